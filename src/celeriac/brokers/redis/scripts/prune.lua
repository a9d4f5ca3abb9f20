-- prune: forget consumers that hold nothing and were idle longer than ARGV[2] ms, so
-- restarted workers do not grow the consumer list of a group without bound.
-- KEYS[1..4] ready streams   KEYS[5] wake stream (optional)
-- ARGV[1] group   ARGV[2] idle threshold in ms
-- On the wake stream a consumer idle that long goes even if it holds entries: they are
-- only wake-ups (a worker that died between its read and its XACK left them).
-- Returns how many consumers were deleted.
local deleted = 0
for index = 1, #KEYS do
  if redis.call('EXISTS', KEYS[index]) == 1 then
    local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[index], ARGV[1])
    if ok then
      for _, c in ipairs(consumers) do
        local f = {}
        for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
        local holds_work = index <= 4 and tonumber(f['pending']) > 0
        if not holds_work and tonumber(f['idle']) > tonumber(ARGV[2]) then
          redis.call('XGROUP', 'DELCONSUMER', KEYS[index], ARGV[1], f['name'])
          deleted = deleted + 1
        end
      end
    end
  end
end
return deleted
