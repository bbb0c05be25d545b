-- Take a ticket out of the line and rescind its offer, if any.
-- ARGV: ticket. Returns the rescinded offer or nil.
redis.call('ZREM', K_LINE, ARGV[1])
redis.call('HDEL', K_INFO, ARGV[1])
redis.call('HDEL', K_TRIED, ARGV[1])
local cur = redis.call('HGET', K_OFFERS, ARGV[1])
if cur then
  remove_offer(ARGV[1])
  return cur
end
return false
