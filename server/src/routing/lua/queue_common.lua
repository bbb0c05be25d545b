-- Shared prelude of the queue-slot scripts (prepended to each of them).
--
-- KEYS, all in the queue's hash slot:
--   1 line       ZSET  ticket -> rank_ms (the waiting line)
--   2 ranks      HASH  ticket -> rank_ms, exact (a ZSET score is a double)
--   3 offers     HASH  ticket -> "agent|version|deadline_ms|rank_ms"
--   4 deadlines  ZSET  ticket -> deadline_ms of its offer
--   5 agents     ZSET  agent -> idle_since_ms: agents believed ready with
--                      free capacity for this queue (the agent slot decides)
--   6 agstate    HASH  agent -> "gen|free": the newest agent state seen here
--                      (gen orders the states) and the free capacity hint
--   7 version    STRING offer version counter (fencing tokens)
--   8 tried      HASH  ticket -> comma-separated agents who declined or
--                      missed it: offered it again only when no other agent
--                      is available (cleared on accept and cancel)
-- Tickets and agents are 20-digit members whose byte order is numeric order,
-- so ZSET ties (same score) are broken by the lowest id.
local K_LINE, K_RANKS, K_OFFERS, K_DEADLINES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_AGENTS, K_AGSTATE, K_VERSION, K_TRIED = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local function parse_offer(s)
  return string.match(s, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
end

local function back_in_line(ticket, rank)
  redis.call('ZADD', K_LINE, rank, ticket)
  redis.call('HSET', K_RANKS, ticket, rank)
end

-- An offer ended without an accept: the ticket goes back to its rank and
-- the agent counts as having tried it.
local function back_after_offer(ticket, agent, rank)
  local tried = redis.call('HGET', K_TRIED, ticket)
  if not tried or tried == '' then
    tried = agent
  elseif not string.find(',' .. tried .. ',', ',' .. agent .. ',', 1, true) then
    tried = tried .. ',' .. agent
  end
  redis.call('HSET', K_TRIED, ticket, tried)
  back_in_line(ticket, rank)
end

local function remove_offer(ticket)
  redis.call('HDEL', K_OFFERS, ticket)
  redis.call('ZREM', K_DEADLINES, ticket)
end

-- The agent's state as of generation `gen`: `free` offers it can still take
-- from this queue (0: not available) and since when it is idle. An older
-- generation than the one already seen is ignored.
local function sync_agent(agent, gen, free, idle)
  local cur = redis.call('HGET', K_AGSTATE, agent)
  if cur and tonumber(gen) < tonumber(string.match(cur, '^([^|]*)')) then
    return
  end
  redis.call('HSET', K_AGSTATE, agent, gen .. '|' .. free)
  if tonumber(free) > 0 then
    redis.call('ZADD', K_AGENTS, idle, agent)
  else
    redis.call('ZREM', K_AGENTS, agent)
  end
end

-- ARGV[i] = count, then count x (agent, gen, free, idle).
local function apply_syncs(i)
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    sync_agent(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  end
  return i
end
