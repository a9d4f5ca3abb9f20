-- restore: put one expired unacked entry back on its queue, as kombu's restore_visible
-- does, unless it changed since it was read (settled, extended or restored meanwhile).
-- KEYS[1] unacked hash   KEYS[2] unacked_index zset   KEYS[3] deliveries hash
-- KEYS[4] delivered_at zset   KEYS[5] leases hash   KEYS[6] the queue's dead-letter stream
-- KEYS[7] the queue's wake list   KEYS[8..] the lists to push it on (one per bound queue)
-- ARGV[1] tag   ARGV[2] the score read   ARGV[3] the unacked value read (or '')
-- ARGV[4] the envelope to push (kombu's redelivered flags set)   ARGV[5] delivery limit
-- ARGV[6] dead max length   ARGV[7] the list's priority step index
-- ARGV[8] the dead-letter reason
-- A message celeriac handed out ARGV[5] times goes to the dead letters instead (with
-- ARGV[5] = 0, one that cannot be restored: no list to push it on).
-- Returns 1 when restored, the dead letter's stream id when dead-lettered, 0 when it had
-- changed.
local tag = ARGV[1]
local held = redis.call('ZSCORE', KEYS[2], tag)
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
local value = redis.call('HGET', KEYS[1], tag)
if (value or '') ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], tag)
redis.call('ZREM', KEYS[2], tag)
redis.call('HDEL', KEYS[5], tag)
if not value then return 0 end
local count = tonumber(redis.call('HGET', KEYS[3], tag)) or 0
if count >= tonumber(ARGV[5]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local id = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], '*', 'i', ARGV[4],
    'r', ARGV[8], 'x', '', 'c', count, 't', now, 'l', ARGV[7], 'g', tag)
  redis.call('HDEL', KEYS[3], tag)
  redis.call('ZREM', KEYS[4], tag)
  return id
end
for i = 8, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[4])  -- the right end: served next, as kombu restores
end
redis.call('LPUSH', KEYS[7], '1')
redis.call('LTRIM', KEYS[7], 0, 0)
redis.call('PEXPIRE', KEYS[7], 60000)
return 1
