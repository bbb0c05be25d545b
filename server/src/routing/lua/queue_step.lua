-- One dispatch step: optionally roll back a tentative offer whose capacity
-- reservation failed, apply agent states, then (if asked) pair the head of the
-- line with the longest-idle available agent as a tentative offer.
-- With pair = 0 and no rollback it only applies agent states.
-- ARGV: deadline_ms, pair (1/0), rollback ticket ('' for none), rollback
--       agent, rollback version, then the agent states (see apply_syncs).
-- Returns {} or {ticket, agent, version, rank, more, free_hint}.
local rb = ARGV[3]
if rb ~= '' then
  local cur = redis.call('HGET', K_OFFERS, rb)
  if cur then
    local agent, version, _, rank = parse_offer(cur)
    if agent == ARGV[4] and version == ARGV[5] then
      remove_offer(rb)
      back_in_line(rb, rank)
    end
  end
end
apply_syncs(6)
if ARGV[2] ~= '1' then
  return {}
end
local head = redis.call('ZRANGE', K_LINE, 0, 0)
if #head == 0 then
  return {}
end
local ticket = head[1]
-- The longest-idle agent who has not tried this ticket; if all available
-- agents have, the longest-idle of them. Only the first (tried + 1) agents
-- can be needed.
local tried = {}
local n_tried = 0
for a in string.gmatch(redis.call('HGET', K_TRIED, ticket) or '', '[^,]+') do
  tried[a] = true
  n_tried = n_tried + 1
end
local candidates = redis.call('ZRANGE', K_AGENTS, 0, n_tried)
if #candidates == 0 then
  return {}
end
local agent = candidates[1]
for _, a in ipairs(candidates) do
  if not tried[a] then
    agent = a
    break
  end
end
local version = tostring(redis.call('INCR', K_VERSION))
local deadline = ARGV[1]
local rank = redis.call('HGET', K_RANKS, ticket)
if not rank then
  rank = redis.call('ZSCORE', K_LINE, ticket)
end
redis.call('ZREM', K_LINE, ticket)
redis.call('HDEL', K_RANKS, ticket)
redis.call('HSET', K_OFFERS, ticket, agent .. '|' .. version .. '|' .. deadline .. '|' .. rank)
redis.call('ZADD', K_DEADLINES, deadline, ticket)
-- Count the offer against the agent's free capacity hint right away.
local gen, free = '0', 1
local st = redis.call('HGET', K_AGSTATE, agent)
if st then
  gen, free = string.match(st, '^([^|]*)|([^|]*)$')
  free = tonumber(free)
end
free = free - 1
redis.call('HSET', K_AGSTATE, agent, gen .. '|' .. free)
if free <= 0 then
  redis.call('ZREM', K_AGENTS, agent)
end
local more = '0'
if redis.call('ZCARD', K_LINE) > 0 and redis.call('ZCARD', K_AGENTS) > 0 then
  more = '1'
end
return {ticket, agent, version, rank, more, tostring(free)}
