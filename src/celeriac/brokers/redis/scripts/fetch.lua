-- fetch: hand out up to ARGV[3] messages of one queue to consumer ARGV[2], atomically.
-- KEYS[1..4] ready streams, highest level first (s3, s2, s1, s0)
-- KEYS[5] delayed zset   KEYS[6] dead-letter stream   KEYS[7] reap cursors (hash)
-- KEYS[8] wake stream   KEYS[9] high marker (present: a level above 0 may have news)
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] limit   ARGV[4] lease in ms
-- ARGV[5] delivery limit   ARGV[6] dead-letter stream max length
-- ARGV[7] '1': housekeeping first, '0': skip it (the caller did it moments ago)
-- Steps: housekeeping (move due delayed messages to their stream; take back leases idle
-- longer than the lease, dead-lettering those delivered ARGV[5] times); read new entries.
-- A fetch without housekeeping that finds nothing returns no wait: the caller fetches
-- again with it, so an idle consumer never waits past a due message or an expired lease.
-- Returns {deliveries, wait, dead}: each delivery is {key index, entry id, message id,
-- payload, pending count, total deliveries, priority or -1}; wait (only when nothing was
-- handed out) is {ms until the next due delayed message or -1, 1 if any entry is in
-- flight, last entry id of each stream..., last id of the wake stream}; dead lists what
-- this call moved to the dead letters, each {dead-letter entry id, its fields as written
-- (flat)}, for the caller to hand back (``take_dead_lettered``).
-- Writes that Redis refuses when it is out of memory (maxmemory with noeviction) are
-- skipped, not fatal: ready messages keep flowing while memory is full.
local group, consumer = ARGV[1], ARGV[2]
local remaining = tonumber(ARGV[3])
local lease, limit, dead_max = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local housekeeping = ARGV[7] == '1'
local now = 0
if housekeeping then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fields_of(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end

local function ensure_group(key)
  local ok = redis.pcall('XGROUP', 'CREATE', key, group, '0', 'MKSTREAM')
  return ok
end

local function is_int(n, low, high)
  return type(n) == 'number' and n == math.floor(n) and n >= low and n <= high
end

-- A delayed member as publish_delayed packs it, or nil for one it did not write.
local function unpacked(member)
  local ok, mid, level, priority, payload = pcall(cmsgpack.unpack, member)
  if not ok or type(mid) ~= 'string' or type(payload) ~= 'string' then return nil end
  if not is_int(level, 0, 3) or not is_int(priority, 0, 9) then return nil end
  return mid, level, priority, payload
end

local dead = {}

-- XADD the dead letter (fields flat: m, p, r, x, c, t, l, y); false when Redis refused it
local function entomb(fields)
  local added = redis.pcall('XADD', KEYS[6], 'MAXLEN', '~', dead_max, '*', unpack(fields))
  if type(added) == 'table' and added.err then return false end
  dead[#dead + 1] = {added, fields}
  return true
end

-- 1. due delayed messages become ready (a member other software added: dead letters)
local due = {}
if housekeeping then
  due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 1000)
end
for _, member in ipairs(due) do
  local mid, level, priority, payload = unpacked(member)
  local added
  if mid == nil then
    added = entomb({'m', '', 'p', member, 'r', 'malformed',
      'x', 'delayed entry is not one celeriac wrote', 'c', 0, 't', now, 'l', 0, 'y', '-1'})
    if not added then break end  -- full: promote later
  elseif priority ~= level * 3 then
    added = redis.pcall('XADD', KEYS[4 - level], '*', 'm', mid, 'p', payload, 'y', priority)
  else
    added = redis.pcall('XADD', KEYS[4 - level], '*', 'm', mid, 'p', payload)
  end
  if type(added) == 'table' and added.err then break end  -- full: promote later
  if mid ~= nil and level > 0 then redis.pcall('SET', KEYS[9], '1') end
  redis.call('ZREM', KEYS[5], member)
end

local out = {}

-- An integer field, or nil when it is absent (the default) or not an integer in range.
local function integer(value, default, low, high)
  if value == nil then return default end
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < low or n > high then return nil end
  return n
end

-- Why an entry cannot be handed out (written by something other than celeriac), or nil.
local function flaw(f)
  if not f['m'] or not f['p'] then return 'stream entry lacks the m or p field' end
  if integer(f['d'], 0, 0, 2147483647) == nil then
    return 'stream entry field d (deliveries before) is not a count'
  end
  if integer(f['y'], -1, -1, 9) == nil then
    return 'stream entry field y (priority) is not an integer from 0 to 9'
  end
  return nil
end

-- never hand out such an entry: to the dead letters as malformed, saying which field
local function refuse(index, id, f, pending, why)
  if now == 0 then  -- read without housekeeping: the clock is read only when needed
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  local added = entomb({'m', f['m'] or id, 'p', f['p'] or '', 'r', 'malformed', 'x', why,
    'c', pending, 't', now, 'l', 4 - index, 'y', '-1'})
  if not added then return end  -- full: stays pending
  redis.call('XACK', KEYS[index], group, id)
  redis.call('XDEL', KEYS[index], id)
end

local function deliver(index, id, f, pending)
  local why = flaw(f)
  if why then return refuse(index, id, f, pending, why) end
  local before = tonumber(f['d'] or '0')
  out[#out + 1] = {index, id, f['m'], f['p'], pending, pending + before, tonumber(f['y'] or '-1')}
  remaining = remaining - 1
end

local function bury(index, id, f, deliveries)
  local key = KEYS[index]
  local detail = 'lease expired without an outcome on delivery ' .. deliveries ..
    ' (delivery_limit=' .. limit .. ')'
  local added = entomb({'m', f['m'], 'p', f['p'], 'r', 'delivery_limit', 'x', detail,
    'c', deliveries, 't', now, 'l', 4 - index, 'y', f['y'] or '-1'})
  if not added then return end  -- full: stays pending
  redis.call('XACK', key, group, id)
  redis.call('XDEL', key, id)
end

-- 2. take back expired leases (a claim is the next delivery: it raises the count). Each
-- call scans about COUNT * 10 pending entries from where the previous fetch stopped.
for index = 1, 4 do
  if remaining <= 0 or not housekeeping then break end
  local key = KEYS[index]
  local cursor = redis.call('HGET', KEYS[7], index) or '0-0'
  local claimed = redis.pcall('XAUTOCLAIM', key, group, consumer, lease, cursor,
    'COUNT', remaining)
  if type(claimed) == 'table' and claimed.err then
    ensure_group(key)
  else
    redis.pcall('HSET', KEYS[7], index, claimed[1])
    for _, gone in ipairs(claimed[3] or {}) do redis.call('XACK', key, group, gone) end
    for _, entry in ipairs(claimed[2]) do
      local id, f = entry[1], fields_of(entry[2])
      local info = redis.call('XPENDING', key, group, id, id, 1)[1]
      local pending = tonumber(info[4])
      local before = integer(f['d'], 0, 0, 2147483647)
      if before ~= nil and flaw(f) == nil and pending - 1 + before >= limit then
        bury(index, id, f, pending - 1 + before)
      else
        deliver(index, id, f, pending)
      end
    end
  end
end

-- 3. new entries, highest level first (again while malformed entries were skipped: a
-- read shorter than asked means the level has nothing more). Levels above 0 only with
-- the high marker (or while housekeeping, for writers that do not raise it); the marker
-- goes once all of them were read to the end.
local function read_level(index)
  local key = KEYS[index]
  while remaining > 0 do
    local asked = remaining
    local read = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', asked,
      'STREAMS', key, '>')
    if type(read) == 'table' and read.err then
      ensure_group(key)
      read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', asked,
        'STREAMS', key, '>')
    end
    if not read then return true end
    local entries = read[1][2]
    for _, entry in ipairs(entries) do deliver(index, entry[1], fields_of(entry[2]), 1) end
    if #entries < asked then return true end
  end
  return false  -- stopped at the limit: there may be more
end

local marked = redis.call('EXISTS', KEYS[9]) == 1
if marked or housekeeping then
  local drained = true
  for index = 1, 3 do
    if not read_level(index) then drained = false end
  end
  if marked and drained then redis.call('DEL', KEYS[9]) end
end
read_level(4)

if #out > 0 or not housekeeping then return {out, {}, dead} end

-- 4. nothing to hand out: tell the caller how long it may wait, and from where
local wait = {-1, 0}
local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if #first > 0 then wait[1] = math.max(0, tonumber(first[2]) - now) end
for index = 1, 4 do
  local info = fields_of(redis.call('XINFO', 'STREAM', KEYS[index]))
  if tonumber(redis.call('XPENDING', KEYS[index], group)[1]) > 0 then wait[2] = 1 end
  wait[#wait + 1] = info['last-generated-id']
end
local wake = redis.call('XREVRANGE', KEYS[8], '+', '-', 'COUNT', 1)[1]
wait[#wait + 1] = wake and wake[1] or '0-0'
return {out, wait, dead}
