-- drop_lease: end a lease now if the holder still has it (a clean stop).
-- KEYS[1] the lease (hash: h, t, e; see hold_lease.lua)
-- ARGV[1] holder
-- Returns 1 when the lease was ended, 0 when ARGV[1] did not hold it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'h', 'e')
if state[1] ~= ARGV[1] or (tonumber(state[2]) or 0) <= now then
  return 0
end
redis.call('HSET', KEYS[1], 'e', 0)
return 1
