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

local function held_by_kind()
  local n_i, n_o = 0, 0
  for _, v in ipairs(redis.call('HVALS', K_HELD)) do
    if string.sub(v, 1, 1) == 'o' then
      n_o = n_o + 1
    else
      n_i = n_i + 1
    end
  end
  return n_i, n_o
end

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

-- What the agent's queues need to know: {gen, free_i, free_o, idle, queues}
-- where the free counts are 0 unless the agent is ready, and idle is ''
-- when both are 0.
local function truth()
  local st = redis.call('HMGET', K_STATE, 'cap_i', 'cap_o', 'ready', 'idle', 'gen', 'queues')
  local free_i, free_o = 0, 0
  if st[3] == '1' then
    local n_i, n_o = held_by_kind()
    free_i = math.max((tonumber(st[1]) or 0) - n_i, 0)
    free_o = math.max((tonumber(st[2]) or 0) - n_o, 0)
  end
  local idle = st[4] or '0'
  if free_i == 0 and free_o == 0 then
    idle = ''
  end
  return {st[5] or '0', tostring(free_i), tostring(free_o), idle, st[6] or ''}
end

local function bump()
  redis.call('HINCRBY', K_STATE, 'gen', 1)
end

-- {status, gen, free_i, free_o, idle, queues, changed ('1'/'0')}: changed
-- tells whether the free counts or idle differ from `before`.
local function reply(status, before)
  local t = truth()
  local changed = '0'
  if before and (t[2] ~= before[2] or t[3] ~= before[3] or t[4] ~= before[4]) then
    changed = '1'
  end
  return {status, t[1], t[2], t[3], t[4], t[5], changed}
end
