-- counts: ready (not yet handed out) and delayed messages of one queue; optionally purge.
-- KEYS[1..4] ready streams   KEYS[5] delayed zset
-- ARGV[1] group   ARGV[2] '1' to delete the ready and delayed messages
-- Returns {ready, delayed}. An entry is in flight from hand-out until settled, then
-- deleted, so ready = stream length - entries in flight (O(1)). Purging deletes the
-- entries after the group's last-delivered id (O(n), an admin action).
local group, purge = ARGV[1], ARGV[2] == '1'
local ready = 0
for index = 1, 4 do
  local key = KEYS[index]
  if redis.call('EXISTS', key) == 1 then
    local last, pending = '0-0', 0
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local f = {}
      for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
      if f['name'] == group then last, pending = f['last-delivered-id'], f['pending'] end
    end
    ready = ready + redis.call('XLEN', key) - pending
    if purge then
      for _, entry in ipairs(redis.call('XRANGE', key, '(' .. last, '+')) do
        redis.call('XDEL', key, entry[1])
      end
    end
  end
end
local delayed = redis.call('ZCARD', KEYS[5])
if purge then redis.call('DEL', KEYS[5]) end
return {ready, delayed}
