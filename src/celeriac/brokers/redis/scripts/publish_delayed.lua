-- publish_delayed: park a message until its due time, measured on Redis server time.
-- KEYS[1] delayed zset   KEYS[2] sequence counter   KEYS[3] wake stream
-- ARGV[1] delay in ms    ARGV[2] message id   ARGV[3] level   ARGV[4] priority
-- ARGV[5] payload
-- Returns 1. The wake entry tells blocked consumers to re-plan their wait.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('INCR', KEYS[2])
local member = cmsgpack.pack(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], seq)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), member)
redis.call('XADD', KEYS[3], 'MAXLEN', '1', '*', 'w', '1')
return 1
