-- The agent takes no new offers. Returns reply('none') for an unknown agent,
-- else reply('ok') followed by the held tickets: ticket, hold, ticket, hold...
if redis.call('EXISTS', K_STATE) == 0 then
  return reply('none', nil)
end
local before = truth()
redis.call('HSET', K_STATE, 'ready', '0')
bump()
local out = reply('ok', before)
for _, v in ipairs(redis.call('HGETALL', K_HELD)) do
  table.insert(out, v)
end
return out
