-- The agent takes no new offers. Returns reply('none') for an unknown agent,
-- else reply('ok') followed by the held tickets: ticket, hold, ticket, hold...
local a = load()
if not a.exists then
  return reply('none', nil, a)
end
local before = view(a)
redis.call('HSET', K_STATE, 'ready', '0')
a.ready = false
bump(a)
local out = reply('ok', before, a)
for _, v in ipairs(a.raw) do
  table.insert(out, v)
end
return out
