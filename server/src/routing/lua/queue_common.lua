-- Shared prelude of the queue-slot scripts (prepended to each of them).
--
-- KEYS, all in the queue's hash slot:
--   1 line       ZSET  ticket -> rank_ms (the waiting line)
--   2 info       HASH  ticket -> "rank_ms|kind|entered_ms" of a waiting
--                      ticket (exact: a ZSET score is a double; kind 'i'/'o')
--   3 offers     HASH  ticket -> "agent|version|deadline_ms|rank_ms|kind|entered_ms"
--   4 deadlines  ZSET  ticket -> deadline_ms of its offer
--   5 avail_i    ZSET  idle..agent -> preference: agents believed ready with
--                      free inbound capacity for this queue (the agent slot
--                      decides); the member is the 20-digit idle_since_ms
--                      followed by the 20-digit agent, so the set's order is
--                      (preference, idle_since_ms, agent)
--   6 avail_o    ZSET  the same for outbound capacity
--   7 agstate    HASH  agent -> "gen|free_i|free_o|idle|ring": the newest
--                      agent state seen here (gen orders the states), the
--                      free capacity hints, the idle member part ('' when
--                      not available) and the agent's ring in this queue
--   8 prefs      HASH  agent -> "gen|preference" (gen of the readiness that
--                      set it; set_preference keeps the gen)
--   9 version    STRING offer version counter (fencing tokens)
--  10 tried      HASH  ticket -> comma-separated agents who declined or
--                      missed it: offered it again only when no other agent
--                      is available (cleared on accept and cancel)
-- Tickets and agents are 20-digit members whose byte order is numeric order,
-- so ZSET ties (same score) are broken by the lowest id.
local K_LINE, K_INFO, K_OFFERS, K_DEADLINES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_AVAIL_I, K_AVAIL_O, K_AGSTATE, K_PREFS = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_VERSION, K_TRIED = KEYS[9], KEYS[10]

-- agent, version, deadline, rank, kind, entered
local function parse_offer(s)
  return string.match(s, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
end

local function offer_value(agent, version, deadline, rank, kind, entered)
  return table.concat({agent, version, deadline, rank, kind, entered}, '|')
end

-- gen, free_i, free_o, idle, ring
local function parse_agstate(s)
  return string.match(s, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
end

local function avail_key(kind)
  if kind == 'o' then
    return K_AVAIL_O
  end
  return K_AVAIL_I
end

-- rank, kind, entered of a waiting ticket.
local function ticket_info(ticket)
  local info = redis.call('HGET', K_INFO, ticket)
  if info then
    return string.match(info, '^([^|]*)|([^|]*)|([^|]*)$')
  end
  local rank = redis.call('ZSCORE', K_LINE, ticket)
  return rank, 'i', rank
end

local function back_in_line(ticket, rank, kind, entered)
  redis.call('ZADD', K_LINE, rank, ticket)
  redis.call('HSET', K_INFO, ticket, rank .. '|' .. kind .. '|' .. entered)
end

-- An offer ended without an accept: the ticket goes back to its rank and
-- the agent counts as having tried it.
local function back_after_offer(ticket, agent, rank, kind, entered)
  local tried = redis.call('HGET', K_TRIED, ticket)
  if not tried or tried == '' then
    tried = agent
  elseif not string.find(',' .. tried .. ',', ',' .. agent .. ',', 1, true) then
    tried = tried .. ',' .. agent
  end
  redis.call('HSET', K_TRIED, ticket, tried)
  back_in_line(ticket, rank, kind, entered)
end

local function remove_offer(ticket)
  redis.call('HDEL', K_OFFERS, ticket)
  redis.call('ZREM', K_DEADLINES, ticket)
end

local function pref_of(agent)
  local cur = redis.call('HGET', K_PREFS, agent)
  if cur then
    return string.match(cur, '|(.*)$')
  end
  return '0'
end

-- The agent's listed members take its current preference.
local function rescore(agent)
  local st = redis.call('HGET', K_AGSTATE, agent)
  if not st then
    return
  end
  local _, _, _, idle = parse_agstate(st)
  if idle ~= '' then
    local p = pref_of(agent)
    redis.call('ZADD', K_AVAIL_I, 'XX', p, idle .. agent)
    redis.call('ZADD', K_AVAIL_O, 'XX', p, idle .. agent)
  end
end

-- The agent's state as of generation `gen`: the offers of each kind it can
-- still take from this queue (0: not available), since when it is idle (its
-- member part, '' when not available) and its ring here; `pref` is '' or the
-- preference set by the readiness of generation `gen`. An older generation
-- than the one already seen is ignored (its preference too, if older than
-- the preference's).
local function sync_agent(agent, gen, free_i, free_o, idle, ring, pref)
  local g = tonumber(gen)
  if pref ~= '' then
    local cur = redis.call('HGET', K_PREFS, agent)
    if not cur or g > tonumber(string.match(cur, '^([^|]*)')) then
      redis.call('HSET', K_PREFS, agent, gen .. '|' .. pref)
      rescore(agent)
    end
  end
  local cur = redis.call('HGET', K_AGSTATE, agent)
  -- Listed in a kind's availability set exactly when idle is set and that
  -- kind has room (every script keeps this): only the sets whose member
  -- changes are written.
  local was_i, was_o, cidle = false, false, ''
  if cur then
    local cgen, cfree_i, cfree_o
    cgen, cfree_i, cfree_o, cidle = parse_agstate(cur)
    if g < tonumber(cgen) then
      return
    end
    was_i = cidle ~= '' and tonumber(cfree_i) > 0
    was_o = cidle ~= '' and tonumber(cfree_o) > 0
  end
  local is_i = idle ~= '' and tonumber(free_i) > 0
  local is_o = idle ~= '' and tonumber(free_o) > 0
  local moved = cidle ~= idle
  if was_i and (moved or not is_i) then
    redis.call('ZREM', K_AVAIL_I, cidle .. agent)
  end
  if was_o and (moved or not is_o) then
    redis.call('ZREM', K_AVAIL_O, cidle .. agent)
  end
  redis.call('HSET', K_AGSTATE, agent, table.concat({gen, free_i, free_o, idle, ring}, '|'))
  local add_i = is_i and (moved or not was_i)
  local add_o = is_o and (moved or not was_o)
  if add_i or add_o then
    local p = pref_of(agent)
    if add_i then
      redis.call('ZADD', K_AVAIL_I, p, idle .. agent)
    end
    if add_o then
      redis.call('ZADD', K_AVAIL_O, p, idle .. agent)
    end
  end
end

-- ARGV[i] = count, then count x (agent, gen, free_i, free_o, idle, ring, pref).
local function apply_syncs(i)
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    sync_agent(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
    i = i + 7
  end
  return i
end
