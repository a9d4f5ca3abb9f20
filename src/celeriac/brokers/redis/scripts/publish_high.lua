-- publish_high: add a message to a ready stream above level 0, and raise the queue's
-- "high" marker with it, atomically, so that a fetch knows to read the higher levels.
-- KEYS[1] the level's stream   KEYS[2] the queue's high marker
-- ARGV[1] message id   ARGV[2] payload   ARGV[3] priority, or '' when the level's own
-- Returns the entry id.
redis.pcall('SET', KEYS[2], '1')  -- refused (memory full): the next housekeeping reads it
if ARGV[3] ~= '' then
  return redis.call('XADD', KEYS[1], '*', 'm', ARGV[1], 'p', ARGV[2], 'y', ARGV[3])
end
return redis.call('XADD', KEYS[1], '*', 'm', ARGV[1], 'p', ARGV[2])
