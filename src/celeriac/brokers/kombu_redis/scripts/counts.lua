-- counts: ready and delayed messages of one queue; with ARGV[1] = '1', drop them too.
-- KEYS[1] the queue's delayed zset   KEYS[2..] its lists
-- Returns {ready, delayed}.
local ready = 0
for i = 2, #KEYS do
  ready = ready + redis.call('LLEN', KEYS[i])
end
local delayed = redis.call('ZCARD', KEYS[1])
if ARGV[1] == '1' then
  redis.call('DEL', unpack(KEYS))
end
return {ready, delayed}
