-- revoked: the live revocations, with the server time they are measured against.
-- KEYS[1] revoked zset (member: task id, score: when its revocation ends, ms)
-- Returns {now ms, id, end ms, id, end ms, ...}; the caller turns each end into its own
-- clock by the time left, so the clock skew of a worker does not matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf', 'WITHSCORES')
table.insert(rows, 1, now)
return rows
