-- unlock: release kombu's unacked_mutex if this process still holds it (its token).
-- KEYS[1] unacked_mutex   ARGV[1] the token it was taken with
-- Returns 1 when released, 0 when it had expired or another process holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
