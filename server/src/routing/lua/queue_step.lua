-- One dispatch step: optionally roll back a tentative offer whose capacity
-- reservation failed, put a ticket in line (as queue_enqueue.lua), apply
-- agent states, then (if asked) pair the first ticket of the line's first
-- `window` tickets that some available agent may take with the agent who
-- gets it, as a tentative offer.
-- With pair = 0 it only does the first three.
-- ARGV: now_ms, deadline_ms, pair (1/0), rollback ticket ('' for none),
--       rollback agent, rollback version, enqueue ticket ('' for none),
--       its rank_ms, kind, entered_ms, window, n, n x ring_after_ms
--       (ascending), then the agent states (see apply_syncs).
-- Returns {} or {ticket, agent, version, rank, kind, entered, max_ring, more}.
local now = tonumber(ARGV[1])
local rb = ARGV[4]
if rb ~= '' then
  local cur = redis.call('HGET', K_OFFERS, rb)
  if cur then
    local agent, version, _, rank, kind, entered = parse_offer(cur)
    if agent == ARGV[5] and version == ARGV[6] then
      remove_offer(rb)
      back_in_line(rb, rank, kind, entered)
    end
  end
end
if ARGV[7] ~= '' and redis.call('HEXISTS', K_OFFERS, ARGV[7]) == 0 then
  back_in_line(ARGV[7], ARGV[8], ARGV[9], ARGV[10])
end
local window = tonumber(ARGV[11])
local n_rings = tonumber(ARGV[12])
local ring_after = {}
for k = 1, n_rings do
  ring_after[k] = tonumber(ARGV[12 + k])
end
apply_syncs(13 + n_rings)
if ARGV[3] ~= '1' then
  return {}
end

-- The highest ring open for a ticket that entered at `entered`.
local function max_ring(entered)
  local waited = now - tonumber(entered)
  local r = 0
  for k = 1, n_rings do
    if waited >= ring_after[k] then
      r = k
    else
      break
    end
  end
  return r
end

local BATCH = 16

-- The first ticket of the window some available agent may take, that
-- agent (the first in (preference, idle, id) order whose ring is open,
-- preferring agents who have not tried the ticket), the ticket's highest
-- open ring, its info {rank, kind, entered} and the agent's state here
-- (both as read, so the offer needs no second read).
local heads_seen = 0
-- Kinds whose availability set was found empty in this step: within a step
-- the sets only lose members, so an empty one stays empty. A line whose
-- heads no free agent can take (everyone busy) costs a few commands, not
-- three per head.
local empty_kind = {}
local function find_pair()
  local ring_of, state_of = {}, {}
  -- Kinds seen to have a member in this call (an offer may empty them).
  local some_kind = {}
  local function nobody_for(kind)
    if empty_kind[kind] then
      return true
    end
    if some_kind[kind] then
      return false
    end
    if redis.call('ZCARD', avail_key(kind)) == 0 then
      empty_kind[kind] = true
      return true
    end
    some_kind[kind] = true
    return false
  end
  local heads = redis.call('ZRANGE', K_LINE, 0, window - 1)
  heads_seen = #heads
  -- The first head's info alone (usually it is paired, or nobody is free);
  -- past it, the rest of the window's in one read: agents busy with
  -- complaints but free for a call go through every head looking for one.
  local rest = nil
  local function info_of(i, ticket)
    if i > 1 then
      if not rest then
        rest = redis.call('HMGET', K_INFO, unpack(heads, 2))
      end
      local info = rest[i - 1]
      if info then
        return string.match(info, '^([^|]*)|([^|]*)|([^|]*)$')
      end
    end
    return ticket_info(ticket)
  end
  for i, ticket in ipairs(heads) do
    local rank, kind, entered = info_of(i, ticket)
    if not empty_kind[kind] then
      local info = {rank, kind, entered}
      local top = max_ring(entered)
      local tried = {}
      for a in string.gmatch(redis.call('HGET', K_TRIED, ticket) or '', '[^,]+') do
        tried[a] = true
      end
      local key = avail_key(kind)
      local fallback = nil
      local start = 0
      while true do
        local batch = redis.call('ZRANGE', key, start, start + BATCH - 1)
        if start == 0 then
          if #batch == 0 then
            empty_kind[kind] = true
          else
            some_kind[kind] = true
          end
        end
        for _, m in ipairs(batch) do
          local agent = string.sub(m, 21)
          local ring = ring_of[agent]
          if ring == nil then
            local st = redis.call('HGET', K_AGSTATE, agent)
            state_of[agent] = st
            ring = false
            if st then
              local _, _, _, _, r = parse_agstate(st)
              ring = tonumber(r) or false
            end
            ring_of[agent] = ring
          end
          if ring and ring <= top then
            if not tried[agent] then
              return ticket, agent, top, info, state_of[agent]
            end
            if not fallback then
              fallback = agent
            end
          end
        end
        if #batch < BATCH then
          break
        end
        start = start + BATCH
      end
      if fallback then
        return ticket, fallback, top, info, state_of[fallback]
      end
    end
    if empty_kind[kind] and nobody_for(kind == 'o' and 'i' or 'o') then
      -- No agent is free for either kind: no later head can be paired.
      return nil
    end
  end
  return nil
end

local ticket, agent, top, info, agstate = find_pair()
if not ticket then
  return {}
end
local rank, kind, entered = info[1], info[2], info[3]
local version = tostring(redis.call('INCR', K_VERSION))
redis.call('ZREM', K_LINE, ticket)
redis.call('HDEL', K_INFO, ticket)
redis.call('HSET', K_OFFERS, ticket, offer_value(agent, version, ARGV[2], rank, kind, entered))
redis.call('ZADD', K_DEADLINES, ARGV[2], ticket)
-- Count the offer against the agent's free capacity hint right away.
local gen, free_i, free_o, idle, ring = parse_agstate(agstate)
free_i, free_o = tonumber(free_i), tonumber(free_o)
if kind == 'o' then
  free_o = math.max(free_o - 1, 0)
  if free_o == 0 then
    redis.call('ZREM', K_AVAIL_O, idle .. agent)
  end
else
  free_i = math.max(free_i - 1, 0)
  if free_i == 0 then
    redis.call('ZREM', K_AVAIL_I, idle .. agent)
  end
end
redis.call('HSET', K_AGSTATE, agent, table.concat({gen, free_i, free_o, idle, ring}, '|'))
local more = '0'
-- A line that fit in the window with this one ticket is empty now.
if not (heads_seen == 1 and window > 1) and find_pair() then
  more = '1'
end
return {ticket, agent, version, rank, kind, entered, tostring(top), more}
