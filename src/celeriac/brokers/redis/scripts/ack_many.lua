-- ack_many: ack several deliveries of one stream, each only if the caller still holds it.
-- KEYS[1] the stream
-- ARGV[1] group   ARGV[2] consumer   then pairs: ARGV[i] entry id, ARGV[i+1] pending count
-- at delivery (as in settle.lua)
-- Returns a list with one 1 (acked) or 0 (the lease was lost: fencing) per pair, in order.
-- One call for a worker's batch of acks, instead of one settle call each.
local key, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local info = redis.call('XPENDING', key, group, id, id, 1)[1]
  if info and info[2] == consumer and tonumber(info[4]) == tonumber(ARGV[i + 1]) then
    redis.call('XACK', key, group, id)
    redis.call('XDEL', key, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
