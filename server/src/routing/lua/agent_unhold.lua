-- Stop counting settled offers (declined, expired, cancelled, rescinded).
-- An offer not held (its reservation has not arrived yet) gets a tombstone
-- so that the late reservation fails.
-- KEYS[2 + k]: tombstone of the k-th offer. ARGV: n, n x (ticket, "kind|queue|version").
-- Returns reply('ok') followed by '1' (was held) or '0' (tombstoned) per offer.
local before = truth()
local n = tonumber(ARGV[1])
local flags = {}
for k = 1, n do
  local ticket, hold = ARGV[2 * k], ARGV[2 * k + 1]
  if redis.call('HGET', K_HELD, ticket) == hold then
    redis.call('HDEL', K_HELD, ticket)
    flags[k] = '1'
  else
    redis.call('SET', KEYS[2 + k], '1', 'PX', 3600000)
    flags[k] = '0'
  end
end
bump()
local out = reply('ok', before)
for k = 1, n do
  table.insert(out, flags[k])
end
return out
