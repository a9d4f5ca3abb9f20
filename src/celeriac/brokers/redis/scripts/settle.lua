-- settle: end one delivery's lease with an outcome, only if the caller still holds it.
-- KEYS[1] the entry's stream   KEYS[2] dead-letter stream   KEYS[3] the queue's high marker
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] entry id   ARGV[4] pending count at delivery
-- ARGV[5] action: 'ack' | 'requeue' | 'requeue_counted' | 'dead'
-- ARGV[6] reason   ARGV[7] detail   ARGV[8] dead-letter max length   ARGV[9] level
-- Returns 1 when applied, 0 when the lease was lost (another consumer owns the entry now,
-- or it was already settled, or the server lost the stream): fencing, so a late worker never applies a stale outcome.
local key, group, id = KEYS[1], ARGV[1], ARGV[3]
local info = redis.pcall('XPENDING', key, group, id, id, 1)
if info.err then
  -- NOGROUP: the server lost the stream (a restart without persistence): nothing is held
  if string.find(info.err, 'NOGROUP', 1, true) then return 0 end
  return info
end
info = info[1]
if not info or info[2] ~= ARGV[2] or tonumber(info[4]) ~= tonumber(ARGV[4]) then
  return 0
end
local action = ARGV[5]
if action ~= 'ack' then
  local entry = redis.call('XRANGE', key, id, id)[1]
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  local before = tonumber(f['d'] or '0')
  local deliveries = before + tonumber(ARGV[4])
  if action == 'dead' then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'm', f['m'], 'p', f['p'],
      'r', ARGV[6], 'x', ARGV[7], 'c', deliveries, 't', now, 'l', ARGV[9],
      'y', f['y'] or '-1')
  else
    -- as if this delivery had not happened, unless the caller counts it
    local kept = deliveries - 1
    if action == 'requeue_counted' then kept = deliveries end
    if tonumber(ARGV[9]) > 0 then redis.pcall('SET', KEYS[3], '1') end  -- see publish_high
    if f['y'] then
      redis.call('XADD', key, '*', 'm', f['m'], 'p', f['p'], 'd', kept, 'y', f['y'])
    else
      redis.call('XADD', key, '*', 'm', f['m'], 'p', f['p'], 'd', kept)
    end
  end
end
redis.call('XACK', key, group, id)
redis.call('XDEL', key, id)
return 1
