-- expired: the unacked entries whose index score is older than the visibility timeout,
-- measured on Redis server time (kombu's restore_visible uses its own clock).
-- KEYS[1] unacked_index zset   KEYS[2] unacked hash
-- ARGV[1] visibility timeout in seconds   ARGV[2] at most this many
-- Returns {tag, score, value or false, ...}: a false value is an index entry without its
-- hash entry (kombu's restore drops those).
local t = redis.call('TIME')
local ceiling = tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(ARGV[1])
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', ceiling),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local found = {}
for i = 1, #rows, 2 do
  found[#found + 1] = rows[i]
  found[#found + 1] = rows[i + 1]
  found[#found + 1] = redis.call('HGET', KEYS[2], rows[i])
end
return found
