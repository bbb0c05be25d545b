-- The agent is ready: replaces capacities, idle time and queues; held
-- becomes the assigned tickets plus the still pending offers.
-- ARGV: cap_i, cap_o, idle_since_ms, queues ("queue:ring,..."),
--       n, n x (assigned ticket, kind),
--       m, m x (ticket, hold) entries to drop if unchanged (settled offers
--       and tickets no longer assigned).
-- Returns reply('ok') followed by the previous queues.
local old_queues = redis.call('HGET', K_STATE, 'queues') or ''
local n = tonumber(ARGV[5])
local i = 6 + 2 * n
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  if redis.call('HGET', K_HELD, ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', K_HELD, ARGV[i])
  end
  i = i + 2
end
for k = 0, n - 1 do
  redis.call('HSETNX', K_HELD, ARGV[6 + 2 * k], ARGV[7 + 2 * k])
end
redis.call('HSET', K_STATE, 'cap_i', ARGV[1], 'cap_o', ARGV[2], 'ready', '1', 'idle', ARGV[3],
  'queues', ARGV[4])
local a = load()
bump(a)
local out = reply('ok', nil, a)
table.insert(out, old_queues)
return out
