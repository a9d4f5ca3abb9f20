-- fetch: hand out up to ARGV[1] messages of one queue, recording each in kombu's unacked
-- hash and index in the same step (no window in which a crash loses one).
-- KEYS[1] unacked hash   KEYS[2] unacked_index zset   KEYS[3] deliveries hash
-- KEYS[4] delivered_at zset   KEYS[5] leases hash   KEYS[6] serial counter
-- KEYS[7] the queue's delayed zset   KEYS[8] its dead-letter stream   KEYS[9] its wake list
-- KEYS[10..] its lists, in the order kombu serves them (priority step 0 first)
-- ARGV[1] limit   ARGV[2] delivery limit   ARGV[3] dead-letter stream max length
-- ARGV[4] the queue's name (the routing key of an envelope that names none)
-- Steps: move due delayed messages to their list (back of the queue); pop from the
-- right of each list in turn, as kombu's consumers do. An entry that is not a kombu
-- envelope with a delivery tag is dead-lettered (malformed); one already handed out
-- ARGV[2] times is dead-lettered (delivery_limit). Each hand-out gets:
--   unacked[tag] = JSON [envelope, exchange, routing key]   (kombu's own format)
--   unacked_index[tag] = now as unix seconds                 (kombu's own format)
--   deliveries[tag] + 1, delivered_at[tag] = now (ms)
--   leases[tag] = "<serial> <score> <envelope length> <list index>"  (fencing)
-- Returns {rows, ms until the next delayed message is due or -1, the oldest
-- unacked_index score or '', server time in ms, ids of the dead letters this call
-- added}; a row is {list index (0-based), envelope, tag, delivery count, serial}.
local limit, delivery_limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local dead_max, queue = ARGV[3], ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local lists = #KEYS - 9

local buried = {}
local function dead(item, reason, detail, count, index, tag)
  buried[#buried + 1] = redis.call('XADD', KEYS[8], 'MAXLEN', '~', dead_max, '*', 'i', item,
    'r', reason, 'x', detail, 'c', count, 't', now, 'l', index, 'g', tag)
end

-- 1. due delayed messages join the back of their list
local due = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 1000)
for _, member in ipairs(due) do
  local index = tonumber(string.sub(member, 1, 1))
  local item = string.sub(member, 2)
  if index and index < lists then
    redis.call('LPUSH', KEYS[10 + index], item)
  else
    dead(item, 'malformed', 'a delayed entry celeriac did not write', 0, 0, '')
  end
  redis.call('ZREM', KEYS[7], member)
end

-- 2. hand out
local rows = {}
local index = 0
while #rows < limit and index < lists do
  local item = redis.call('RPOP', KEYS[10 + index])
  if not item then
    index = index + 1
  else
    local ok, message = pcall(cjson.decode, item)
    local properties = ok and type(message) == 'table' and message['properties']
    local tag = type(properties) == 'table' and properties['delivery_tag']
    if type(tag) ~= 'string' or tag == '' then
      dead(item, 'malformed', 'not a kombu message with a delivery tag', 0, index, '')
    else
      local before = tonumber(redis.call('HGET', KEYS[3], tag)) or 0
      if before >= delivery_limit then
        dead(item, 'delivery_limit', '', before, index, tag)
        redis.call('HDEL', KEYS[3], tag)
        redis.call('ZREM', KEYS[4], tag)
      else
        local exchange, routing_key = '', queue
        local info = properties['delivery_info']
        if type(info) == 'table' then
          if type(info['exchange']) == 'string' then exchange = info['exchange'] end
          if type(info['routing_key']) == 'string' then routing_key = info['routing_key'] end
        end
        local count = redis.call('HINCRBY', KEYS[3], tag, 1)
        local serial = redis.call('INCR', KEYS[6])
        redis.call('ZADD', KEYS[4], now, tag)
        redis.call('ZADD', KEYS[2], score, tag)
        redis.call('HSET', KEYS[1], tag,
          '[' .. item .. ', ' .. cjson.encode(exchange) .. ', ' .. cjson.encode(routing_key) .. ']')
        redis.call('HSET', KEYS[5], tag,
          serial .. ' ' .. score .. ' ' .. string.len(item) .. ' ' .. index)
        rows[#rows + 1] = {index, item, tag, count, serial}
      end
    end
  end
end

-- 3. more left after a full hand-out: wake another waiting fetch
if #rows > 0 and #rows >= limit then
  for i = index, lists - 1 do
    if redis.call('LLEN', KEYS[10 + i]) > 0 then
      redis.call('LPUSH', KEYS[9], '1')
      redis.call('LTRIM', KEYS[9], 0, 0)
      redis.call('PEXPIRE', KEYS[9], 60000)
      break
    end
  end
end

local next_due = -1
local first = redis.call('ZRANGE', KEYS[7], 0, 0, 'WITHSCORES')
if first[2] then next_due = math.max(0, tonumber(first[2]) - now) end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {rows, next_due, oldest[2] or '', now, buried}
