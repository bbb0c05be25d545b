-- Shared prelude of the agent-slot scripts (prepended to each of them).
--
-- KEYS, all in the agent's hash slot:
--   1 state  HASH cap_i, cap_o (capacity per kind), ready ('1'/'0'), idle
--            (idle_since_ms), gen (bumped on every change), queues
--            (comma-separated "queue:ring")
--   2 held   HASH ticket -> "kind|queue|version" of its offer (kept after
--            the accept: the ticket stays held until released), or "kind"
--            for a ticket assigned before the agent became ready
--   3...     tombstones (per script)
-- The held count per kind is the authority for capacity; the ring in
-- `queues` is the authority for which tickets the agent may be offered.
local K_STATE, K_HELD = KEYS[1], KEYS[2]

-- The agent's ring in queue `q`, or nil if it does not serve it.
local function ring_in(queues, q)
  for entry in string.gmatch(queues or '', '[^,]+') do
    local id, ring = string.match(entry, '^([^:]*):(.*)$')
    if id == q then
      return tonumber(ring)
    end
  end
  return nil
end

-- Keep the copy's held counts per kind in step with a hold counted,
-- written or deleted.
local function count_hold(a, value, delta)
  if string.sub(value, 1, 1) == 'o' then
    a.n_o = a.n_o + delta
  else
    a.n_i = a.n_i + delta
  end
end

-- The agent's state and holds, read once (two commands); a script that
-- writes keeps this copy up to date with its writes, so its reply needs no
-- second read.
local function load()
  local st = redis.call('HMGET', K_STATE, 'cap_i', 'cap_o', 'ready', 'idle', 'gen', 'queues')
  local raw = redis.call('HGETALL', K_HELD)
  local a = {
    cap_i = tonumber(st[1]) or 0, cap_o = tonumber(st[2]) or 0, ready = st[3] == '1',
    idle = st[4] or '0', gen = st[5] or '0', queues = st[6] or '',
    held = {}, raw = raw, n_i = 0, n_o = 0,
    -- Those are all of the state's fields: none set, no agent.
    exists = st[1] or st[2] or st[3] or st[4] or st[5] or st[6],
  }
  for k = 1, #raw, 2 do
    a.held[raw[k]] = raw[k + 1]
    count_hold(a, raw[k + 1], 1)
  end
  return a
end

local function set_hold(a, ticket, value)
  redis.call('HSET', K_HELD, ticket, value)
  if a.held[ticket] then
    count_hold(a, a.held[ticket], -1)
  end
  a.held[ticket] = value
  count_hold(a, value, 1)
end

local function del_hold(a, ticket)
  redis.call('HDEL', K_HELD, ticket)
  count_hold(a, a.held[ticket], -1)
  a.held[ticket] = nil
end

-- What the agent's queues need to know: {gen, free_i, free_o, idle, queues}
-- where the free counts are 0 unless the agent is ready, and idle is ''
-- when both are 0.
local function view(a)
  local free_i, free_o = 0, 0
  if a.ready then
    free_i = math.max(a.cap_i - a.n_i, 0)
    free_o = math.max(a.cap_o - a.n_o, 0)
  end
  local idle = a.idle
  if free_i == 0 and free_o == 0 then
    idle = ''
  end
  return {a.gen, tostring(free_i), tostring(free_o), idle, a.queues}
end

local function bump(a)
  a.gen = string.format('%d', redis.call('HINCRBY', K_STATE, 'gen', 1))
end

-- {status, gen, free_i, free_o, idle, queues, changed ('1'/'0')} of the
-- copy `a`: changed tells whether the free counts or idle differ from
-- `before` (a view).
local function reply(status, before, a)
  local t = view(a)
  local changed = '0'
  if before and (t[2] ~= before[2] or t[3] ~= before[3] or t[4] ~= before[4]) then
    changed = '1'
  end
  return {status, t[1], t[2], t[3], t[4], t[5], changed}
end
