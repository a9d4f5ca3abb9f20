-- revoke: record task ids as revoked until now + ttl (Redis server time), and announce it.
-- KEYS[1] revoked zset (member: task id, score: when its revocation ends, ms)
-- ARGV[1] ttl in ms   ARGV[2] the revocations topic's channel   ARGV[3] the message (JSON)
-- ARGV[4..] task ids
-- Returns the number of subscribers that got the announcement. Ended revocations are
-- dropped first and the key expires with its last member: the set holds only live ones.
-- A revocation already there ends at the later of its two ends (ZADD GT).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ends = string.format('%d', now + tonumber(ARGV[1]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], 'GT', ends, ARGV[i])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', tonumber(last[2])))
end
return redis.call('PUBLISH', ARGV[2], ARGV[3])
