-- settle: end one hand-out (ack, requeue or dead letter) if it is still the live one.
-- KEYS[1] unacked hash   KEYS[2] unacked_index zset   KEYS[3] deliveries hash
-- KEYS[4] delivered_at zset   KEYS[5] leases hash   KEYS[6] the queue's dead-letter stream
-- KEYS[7] the queue's wake list   KEYS[8..] its lists (kombu's serving order)
-- ARGV[1] delivery tag   ARGV[2] serial of the hand-out   ARGV[3] 'ack' | 'requeue' |
-- 'requeue_counted' | 'dead'   ARGV[4] reason   ARGV[5] detail   ARGV[6] dead max length
-- Fencing: the hand-out is live while leases[tag] names its serial and unacked_index
-- still has the score it wrote (a restore by any kombu consumer removes the entry, and a
-- new hand-out writes another score). Returns 1 when settled, 0 when refused.
local tag = ARGV[1]
local lease = redis.call('HGET', KEYS[5], tag)
if not lease then return 0 end
local serial, score, length, index = string.match(lease, '^(%S+) (%S+) (%S+) (%S+)$')
if serial ~= ARGV[2] then return 0 end
local held = redis.call('ZSCORE', KEYS[2], tag)
if not held or tonumber(held) ~= tonumber(score) then return 0 end
local value = redis.call('HGET', KEYS[1], tag)
if not value then return 0 end
redis.call('HDEL', KEYS[1], tag)
redis.call('ZREM', KEYS[2], tag)
redis.call('HDEL', KEYS[5], tag)
local action = ARGV[3]
if action == 'ack' then
  redis.call('HDEL', KEYS[3], tag)
  redis.call('ZREM', KEYS[4], tag)
  return 1
end
-- the envelope is the start of kombu's JSON [envelope, exchange, routing key]
local item = string.sub(value, 2, 1 + tonumber(length))
if action == 'dead' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local count = redis.call('HGET', KEYS[3], tag) or 0
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], '*', 'i', item, 'r', ARGV[4],
    'x', ARGV[5], 'c', count, 't', now, 'l', index, 'g', tag)
  redis.call('HDEL', KEYS[3], tag)
  redis.call('ZREM', KEYS[4], tag)
  return 1
end
if action == 'requeue' then
  redis.call('HINCRBY', KEYS[3], tag, -1)
end
-- back of its list, as kombu's reject(requeue=True) does
redis.call('LPUSH', KEYS[8 + tonumber(index)], item)
redis.call('LPUSH', KEYS[7], '1')
redis.call('LTRIM', KEYS[7], 0, 0)
redis.call('PEXPIRE', KEYS[7], 60000)
return 1
