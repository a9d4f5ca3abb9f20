-- hold_lease: take a lease for a holder, or renew it, on Redis server time.
-- KEYS[1] the lease (hash: h = holder, t = fencing token, e = when it ends, ms of Redis
--         server time). The hash is kept after the lease ends so the token keeps growing.
-- ARGV[1] holder   ARGV[2] ttl in ms
-- Returns the fencing token when ARGV[1] holds the lease now (the same token while one
-- holder renews, one more each time it passes to a new holder); false while another
-- holder's lease runs.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'h', 't', 'e')
local token = tonumber(state[2]) or 0
local live = (tonumber(state[3]) or 0) > now
if live and state[1] ~= ARGV[1] then
  return false
end
if not live or state[1] ~= ARGV[1] then
  token = token + 1
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', token, 'e', now + tonumber(ARGV[2]))
return token
