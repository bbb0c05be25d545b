-- Rescind the given offers of one agent (those still pending with that
-- version): back in line. Then apply agent states.
-- ARGV: agent, n, n x (ticket, version), then agent states (see apply_syncs).
-- Returns {ticket, offer, ...} of the offers rescinded.
local agent = ARGV[1]
local n = tonumber(ARGV[2])
local out = {}
local i = 3
for _ = 1, n do
  local ticket, want = ARGV[i], ARGV[i + 1]
  i = i + 2
  local cur = redis.call('HGET', K_OFFERS, ticket)
  if cur then
    local a, version, _, rank, kind, entered = parse_offer(cur)
    if a == agent and version == want then
      remove_offer(ticket)
      back_after_offer(ticket, agent, rank, kind, entered)
      table.insert(out, ticket)
      table.insert(out, cur)
    end
  end
end
apply_syncs(i)
return out
