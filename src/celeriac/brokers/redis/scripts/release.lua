-- release: free an idempotency key, only if it still holds the given value.
-- KEYS[1] the key (string)
-- ARGV[1] value (the task id it was reserved for)
-- Returns 1 when freed, 0 when it held something else or nothing.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
