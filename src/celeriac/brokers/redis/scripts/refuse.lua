-- refuse: dead-letter, as malformed, an entry the caller's own blocking read handed it
-- and that it cannot hand out (written by other software), if the caller still holds it.
-- KEYS[1] the entry's stream   KEYS[2] dead-letter stream
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] entry id   ARGV[4] why
-- ARGV[5] dead-letter max length   ARGV[6] level
-- Returns {dead-letter entry id, its fields (flat)} when moved, {} when not held any more
-- or when Redis refused the write (out of memory): then the entry stays pending, and a
-- fetch takes it back when its lease runs out and refuses it there.
local key, group, id = KEYS[1], ARGV[1], ARGV[3]
local info = redis.call('XPENDING', key, group, id, id, 1)[1]
if not info or info[2] ~= ARGV[2] then return {} end
local entry = redis.call('XRANGE', key, id, id)[1]
local f = {}
if entry then
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = {'m', f['m'] or id, 'p', f['p'] or '', 'r', 'malformed', 'x', ARGV[4],
  'c', info[4], 't', now, 'l', ARGV[6], 'y', '-1'}
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
if type(added) == 'table' and added.err then return {} end
redis.call('XACK', key, group, id)
redis.call('XDEL', key, id)
return {added, fields}
