-- Settle one offer as accepted or declined (declined: back in line).
-- ARGV: ticket, agent, version, mode ('accept' | 'decline')
-- Returns {'none'} | {'stale'} | {'ok', offer}.
local cur = redis.call('HGET', K_OFFERS, ARGV[1])
if not cur then
  return {'none'}
end
local agent, version, _, rank, kind, entered = parse_offer(cur)
if agent ~= ARGV[2] then
  return {'none'}
end
if version ~= ARGV[3] then
  return {'stale'}
end
remove_offer(ARGV[1])
if ARGV[4] == 'decline' then
  back_after_offer(ARGV[1], agent, rank, kind, entered)
else
  redis.call('HDEL', K_TRIED, ARGV[1])
end
return {'ok', cur}
