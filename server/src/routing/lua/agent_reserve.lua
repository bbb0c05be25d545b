-- Count a tentative offer against the agent's capacity for its kind, if the
-- agent is ready for the offer's queue at a ring open for the ticket, has
-- room for that kind, and the offer was not already settled.
-- KEYS[3]: the offer's tombstone.
-- ARGV: ticket, hold ("kind|queue|version"), queue, kind, max_ring.
-- Returns reply('ok' | 'full' | 'gone').
--
-- An offer is known settled when its tombstone is there (its unhold came
-- first) or when the agent already holds a newer offer of the same ticket
-- in the same queue: versions strictly increase per queue and a queue
-- offers a ticket to one agent at a time, so the older offer ended before
-- the newer one was made. Such a late reservation must not replace the
-- newer hold: the older offer's unhold, still on its way, would then delete
-- the only entry counting the live offer. For the same reason an older hold
-- of the ticket in this queue is dead and is replaced, not counted.
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DEL', KEYS[3])
  return reply('gone', nil, load())
end
local a = load()
local cur = a.held[ARGV[1]]
if cur == ARGV[2] then
  -- Already reserved (a repeated reservation changes nothing).
  return reply('ok', nil, a)
end
if cur then
  local cur_q, cur_v = string.match(cur, '^[^|]*|([^|]*)|([^|]*)$')
  local _, my_v = string.match(ARGV[2], '^[^|]*|([^|]*)|([^|]*)$')
  if cur_q == ARGV[3] and tonumber(cur_v) > tonumber(my_v) then
    return reply('gone', nil, a)
  end
end
local ring = ring_in(a.queues, ARGV[3])
if not a.ready or not ring or ring > tonumber(ARGV[5]) then
  return reply('full', nil, a)
end
local kind = ARGV[4]
local cap, held = a.cap_i, a.n_i
if kind == 'o' then
  cap, held = a.cap_o, a.n_o
end
-- An older offer of the same ticket whose unhold is still on its way
-- does not count (it is replaced below).
if cur and string.find(cur, '|', 1, true) and string.sub(cur, 1, 1) == kind then
  held = held - 1
end
if held >= cap then
  return reply('full', nil, a)
end
set_hold(a, ARGV[1], ARGV[2])
bump(a)
return reply('ok', nil, a)
