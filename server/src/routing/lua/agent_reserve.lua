-- Count a tentative offer against the agent's capacity, if the agent is
-- ready for the offer's queue, has room, and the offer was not already
-- settled (tombstone).
-- KEYS[3]: the offer's tombstone. ARGV: ticket, "queue|version", queue.
-- Returns reply('ok' | 'full' | 'gone').
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DEL', KEYS[3])
  return reply('gone', nil)
end
local st = redis.call('HMGET', K_STATE, 'cap', 'ready', 'queues')
if st[2] ~= '1' or not string.find(',' .. (st[3] or '') .. ',', ',' .. ARGV[3] .. ',', 1, true) then
  return reply('full', nil)
end
local held = redis.call('HLEN', K_HELD)
local prev = redis.call('HGET', K_HELD, ARGV[1])
if prev and prev ~= '' then
  -- An earlier offer of the same ticket whose release is still on its way.
  held = held - 1
end
if held >= (tonumber(st[1]) or 0) then
  return reply('full', nil)
end
redis.call('HSET', K_HELD, ARGV[1], ARGV[2])
bump()
return reply('ok', nil)
