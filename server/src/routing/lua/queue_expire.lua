-- Settle every offer due at or before now_ms: back in line.
-- ARGV: now_ms. Returns {ticket, offer, ticket, offer, ...}.
local due = redis.call('ZRANGEBYSCORE', K_DEADLINES, '-inf', ARGV[1])
local out = {}
for _, ticket in ipairs(due) do
  local cur = redis.call('HGET', K_OFFERS, ticket)
  redis.call('ZREM', K_DEADLINES, ticket)
  if cur then
    local agent, _, _, rank, kind, entered = parse_offer(cur)
    redis.call('HDEL', K_OFFERS, ticket)
    back_after_offer(ticket, agent, rank, kind, entered)
    table.insert(out, ticket)
    table.insert(out, cur)
  end
end
return out
