-- extend: renew the leases of deliveries this consumer still holds in one stream.
-- KEYS[1] stream   ARGV[1] group   ARGV[2] consumer
-- ARGV[3], ARGV[4], ...: entry id and pending count at delivery, in pairs
-- Returns the positions (1-based pair index) of deliveries whose lease was lost.
-- XCLAIM with min-idle 0 and JUSTID resets the idle time without counting a delivery.
local key, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local lost = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local info = redis.pcall('XPENDING', key, group, id, id, 1)
  if info.err then
    -- NOGROUP: the server lost the stream (a restart without persistence): nothing is held
    if not string.find(info.err, 'NOGROUP', 1, true) then return info end
    info = nil
  else
    info = info[1]
  end
  if info and info[2] == consumer and tonumber(info[4]) == tonumber(ARGV[i + 1]) then
    redis.call('XCLAIM', key, group, consumer, 0, id, 'JUSTID')
  else
    lost[#lost + 1] = (i - 1) / 2
  end
end
return lost
