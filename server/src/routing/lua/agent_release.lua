-- An assigned ticket ended: free its capacity; idle time starts now.
-- ARGV: ticket, now_ms. Returns reply('ok' | 'none').
local before = truth()
if redis.call('HDEL', K_HELD, ARGV[1]) == 0 then
  return reply('none', before)
end
redis.call('HSET', K_STATE, 'idle', ARGV[2])
bump()
return reply('ok', before)
