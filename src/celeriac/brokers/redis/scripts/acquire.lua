-- acquire: take one token from a shared token bucket, on Redis server time.
-- KEYS[1] bucket hash (t = tokens, a = when t was counted, seconds)
-- ARGV[1] rate (tokens per second, > 0)   ARGV[2] capacity (tokens, >= 1)
-- Returns the wait as a string: "0" when a token was taken, else the seconds until one
-- will be there (nothing taken). A missing bucket is a full one, so the hash expires once
-- the bucket would have refilled: idle buckets cost nothing.
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = capacity
if state[1] and state[2] then
  local elapsed = math.max(0, now - tonumber(state[2]))
  tokens = math.min(capacity, tonumber(state[1]) + elapsed * rate)
end
local wait = 0
if tokens >= 1 - 1e-9 then  -- tolerate float rounding at the exact refill moment
  tokens = math.max(0, tokens - 1)
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'a', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil((capacity - tokens) / rate * 1000) + 1000))
return string.format('%.17g', wait)
