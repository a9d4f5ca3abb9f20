-- reserve: hold an idempotency key for a while, unless it is held already.
-- KEYS[1] the key (string)
-- ARGV[1] value (a task id)   ARGV[2] ttl in ms
-- Returns false (nil) when the key was free and now holds ARGV[1]; else the value held.
local held = redis.call('GET', KEYS[1])
if held then
  return held
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
