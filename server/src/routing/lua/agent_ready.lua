-- The agent is ready: replaces capacity, idle time and queues; held becomes
-- the assigned tickets plus the still pending offers.
-- ARGV: cap, idle_since_ms, queues, n, n x assigned ticket,
--       m, m x (ticket, hold) entries to drop if unchanged (settled offers
--       and tickets no longer assigned).
-- Returns reply('ok') followed by the previous queues.
local old_queues = redis.call('HGET', K_STATE, 'queues') or ''
local n = tonumber(ARGV[4])
local i = 5 + n
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  if redis.call('HGET', K_HELD, ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', K_HELD, ARGV[i])
  end
  i = i + 2
end
for k = 5, 4 + n do
  redis.call('HSETNX', K_HELD, ARGV[k], '')
end
redis.call('HSET', K_STATE, 'cap', ARGV[1], 'ready', '1', 'idle', ARGV[2], 'queues', ARGV[3])
bump()
local out = reply('ok', nil)
table.insert(out, old_queues)
return out
