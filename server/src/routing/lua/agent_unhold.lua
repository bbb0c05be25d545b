-- Stop counting settled offers (declined, expired, cancelled, rescinded).
-- An offer not held (its reservation has not arrived yet) gets a tombstone
-- so that the late reservation fails.
-- KEYS[2 + k]: tombstone of the k-th offer. ARGV: n, n x (ticket, "kind|queue|version").
-- Returns reply('ok') followed by '1' (was held) or '0' (tombstoned) per offer.
local a = load()
local before = view(a)
local n = tonumber(ARGV[1])
local flags = {}
for k = 1, n do
  local ticket, hold = ARGV[2 * k], ARGV[2 * k + 1]
  if a.held[ticket] == hold then
    del_hold(a, ticket)
    flags[k] = '1'
  else
    redis.call('SET', KEYS[2 + k], '1', 'PX', 3600000)
    flags[k] = '0'
  end
end
bump(a)
local out = reply('ok', before, a)
for k = 1, n do
  table.insert(out, flags[k])
end
return out
