-- prune: forget the delivery counts and leases of messages last handed out long ago
-- (settled by a Celery worker, which knows nothing of them), so they do not pile up.
-- KEYS[1] unacked hash   KEYS[2] deliveries hash   KEYS[3] delivered_at zset
-- KEYS[4] leases hash
-- ARGV[1] keep them this many ms after the last hand-out   ARGV[2] at most this many
-- One still in kombu's unacked hash is in flight: it is kept for another period.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[1]),
  'LIMIT', 0, tonumber(ARGV[2]))
for _, tag in ipairs(old) do
  if redis.call('HEXISTS', KEYS[1], tag) == 1 then
    redis.call('ZADD', KEYS[3], now, tag)
  else
    redis.call('HDEL', KEYS[2], tag)
    redis.call('HDEL', KEYS[4], tag)
    redis.call('ZREM', KEYS[3], tag)
  end
end
return #old
