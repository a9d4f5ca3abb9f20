-- replay: move dead letters back to the back of their queue, with a fresh delivery count.
-- KEYS[1] the queue's dead-letter stream   KEYS[2] deliveries hash   KEYS[3] delivered_at
-- KEYS[4] the queue's wake list   KEYS[5..] its lists (kombu's serving order)
-- ARGV the entry ids to replay; none: every entry. Returns how many moved.
local entries = {}
if #ARGV == 0 then
  entries = redis.call('XRANGE', KEYS[1], '-', '+')
else
  for _, id in ipairs(ARGV) do
    local ok, found = pcall(redis.call, 'XRANGE', KEYS[1], id, id)
    if ok and found[1] then entries[#entries + 1] = found[1] end
  end
end
local moved = 0
for _, entry in ipairs(entries) do
  local fields = {}
  for i = 1, #entry[2], 2 do fields[entry[2][i]] = entry[2][i + 1] end
  local index = tonumber(fields['l']) or 0
  if fields['i'] and index >= 0 and index < #KEYS - 4 then
    redis.call('LPUSH', KEYS[5 + index], fields['i'])
    if fields['g'] and fields['g'] ~= '' then
      redis.call('HDEL', KEYS[2], fields['g'])
      redis.call('ZREM', KEYS[3], fields['g'])
    end
    redis.call('XDEL', KEYS[1], entry[1])
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, 0)
  redis.call('PEXPIRE', KEYS[4], 60000)
end
return moved
