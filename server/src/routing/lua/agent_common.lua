-- Shared prelude of the agent-slot scripts (prepended to each of them).
--
-- KEYS, all in the agent's hash slot:
--   1 state  HASH cap, ready ('1'/'0'), idle (idle_since_ms), gen (bumped on
--            every change), queues (comma-separated queue ids)
--   2 held   HASH ticket -> "queue|version" of its offer (kept after the
--            accept: the ticket stays held until released), or '' for a
--            ticket assigned before the agent became ready
--   3...     tombstones (per script)
-- The held count is the authority for capacity.
local K_STATE, K_HELD = KEYS[1], KEYS[2]

-- What the agent's queues need to know: {gen, free, idle, queues} where free
-- is 0 unless the agent is ready, and idle is '0' when free is 0.
local function truth()
  local st = redis.call('HMGET', K_STATE, 'cap', 'ready', 'idle', 'gen', 'queues')
  local free = 0
  if st[2] == '1' then
    free = (tonumber(st[1]) or 0) - redis.call('HLEN', K_HELD)
    if free < 0 then
      free = 0
    end
  end
  local idle = st[3] or '0'
  if free == 0 then
    idle = '0'
  end
  return {st[4] or '0', tostring(free), idle, st[5] or ''}
end

local function bump()
  redis.call('HINCRBY', K_STATE, 'gen', 1)
end

-- {status, gen, free, idle, queues, changed ('1'/'0')}: changed tells
-- whether free or idle differ from `before`.
local function reply(status, before)
  local t = truth()
  local changed = '0'
  if before and (t[2] ~= before[2] or t[3] ~= before[3]) then
    changed = '1'
  end
  return {status, t[1], t[2], t[3], t[4], changed}
end
