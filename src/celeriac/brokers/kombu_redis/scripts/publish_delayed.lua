-- publish_delayed: hold a message until it is due, on Redis server time.
-- KEYS[1] the queue's delayed zset   KEYS[2] the queue's wake list
-- ARGV[1] delay in ms   ARGV[2] the member: its priority step index (one digit), then
-- the envelope. A fetch moves it to that list once due; the wake token makes a waiting
-- fetch look again, so it waits no longer than until this one is due.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[1])), ARGV[2])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, 0)
redis.call('PEXPIRE', KEYS[2], 60000)
return 1
