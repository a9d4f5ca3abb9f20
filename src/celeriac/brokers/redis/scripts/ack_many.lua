-- ack_many: ack several deliveries of one stream, each only if the caller still holds it.
-- KEYS[1] the stream
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] lowest entry id   ARGV[4] highest entry id
-- then pairs: ARGV[i] entry id, ARGV[i+1] pending count at delivery (as in settle.lua)
-- Returns a list with one 1 (acked) or 0 (the lease was lost: fencing) per pair, in order.
-- One call for a worker's batch of acks: one XPENDING over the batch's id range (this
-- consumer's entries only), one XACK and one XDEL for all the held ones.
local key, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local pairs_count = (#ARGV - 4) / 2
local room = pairs_count * 2 + 64
local held = {}
local listed = redis.pcall('XPENDING', key, group, ARGV[3], ARGV[4], room, consumer)
if listed.err then
  -- NOGROUP: the server lost the stream (a restart without persistence): nothing is held
  if not string.find(listed.err, 'NOGROUP', 1, true) then return listed end
  local none = {}
  for _ = 5, #ARGV, 2 do none[#none + 1] = 0 end
  return none
end
for _, info in ipairs(listed) do held[info[1]] = tonumber(info[4]) end
local truncated = #listed >= room
local out, ids = {}, {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local count = held[id]
  if count == nil and truncated then  -- more of ours in the range than listed: ask alone
    local info = redis.call('XPENDING', key, group, id, id, 1, consumer)[1]
    if info then count = tonumber(info[4]) end
  end
  if count ~= nil and count == tonumber(ARGV[i + 1]) then
    ids[#ids + 1] = id
    held[id] = nil  -- the same id twice in a batch is acked once
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for first = 1, #ids, 1000 do  -- unpack stays within Lua's stack
  local last = math.min(first + 999, #ids)
  redis.call('XACK', key, group, unpack(ids, first, last))
  redis.call('XDEL', key, unpack(ids, first, last))
end
return out
