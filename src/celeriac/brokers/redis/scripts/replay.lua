-- replay: move dead letters back to their ready streams with a fresh delivery count.
-- KEYS[1] dead-letter stream   KEYS[2..5] ready streams s3, s2, s1, s0
-- KEYS[6] the queue's high marker (raised when a message goes above level 0)
-- ARGV: entry ids to replay; none means all.
-- Returns how many were moved.
local entries
if #ARGV == 0 then
  entries = redis.call('XRANGE', KEYS[1], '-', '+')
else
  entries = {}
  for _, id in ipairs(ARGV) do
    -- an id that is not a stream id at all names no entry: skip it like a missing one
    local found = redis.pcall('XRANGE', KEYS[1], id, id)
    if not found.err and found[1] then entries[#entries + 1] = found[1] end
  end
end
for _, entry in ipairs(entries) do
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  local key = KEYS[5 - tonumber(f['l'])]
  if tonumber(f['l']) > 0 then redis.pcall('SET', KEYS[6], '1') end
  if f['y'] and f['y'] ~= '-1' then
    redis.call('XADD', key, '*', 'm', f['m'], 'p', f['p'], 'y', f['y'])
  else
    redis.call('XADD', key, '*', 'm', f['m'], 'p', f['p'])
  end
  redis.call('XDEL', KEYS[1], entry[1])
end
return #entries
