-- publish: push a message on its kombu list, as a kombu producer does, and wake a fetch.
-- KEYS[1] the queue's list for the message's priority step   KEYS[2] the queue's wake list
-- ARGV[1] the envelope (JSON)
-- The wake list holds at most one token: a waiting fetch pops it (BRPOP) and looks again.
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, 0)
redis.call('PEXPIRE', KEYS[2], 60000)
return 1
