-- An assigned ticket ended: free its capacity; idle time starts now.
-- ARGV: ticket, now_ms. Returns reply('ok' | 'none').
local a = load()
local before = view(a)
if not a.held[ARGV[1]] then
  return reply('none', before, a)
end
del_hold(a, ARGV[1])
redis.call('HSET', K_STATE, 'idle', ARGV[2])
a.idle = ARGV[2]
bump(a)
return reply('ok', before, a)
