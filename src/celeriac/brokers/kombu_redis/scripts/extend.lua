-- extend: renew live hand-outs by moving their unacked_index score to now, so no kombu
-- consumer's restore (nor celeriac's) takes them back before visibility_timeout passes.
-- KEYS[1] unacked_index zset   KEYS[2] leases hash
-- ARGV pairs: delivery tag, serial of the hand-out
-- Returns the 1-based pair positions whose hand-out was no longer live (see settle.lua).
local t = redis.call('TIME')
local score = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local lost = {}
for i = 1, #ARGV, 2 do
  local tag = ARGV[i]
  local lease = redis.call('HGET', KEYS[2], tag)
  local live = false
  if lease then
    local serial, held, length, index = string.match(lease, '^(%S+) (%S+) (%S+) (%S+)$')
    local current = redis.call('ZSCORE', KEYS[1], tag)
    if serial == ARGV[i + 1] and current and tonumber(current) == tonumber(held) then
      redis.call('ZADD', KEYS[1], 'XX', score, tag)
      redis.call('HSET', KEYS[2], tag, serial .. ' ' .. score .. ' ' .. length .. ' ' .. index)
      live = true
    end
  end
  if not live then lost[#lost + 1] = (i + 1) / 2 end
end
return lost
