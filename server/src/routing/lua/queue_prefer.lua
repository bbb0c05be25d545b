-- Set one agent's preference in this queue (lowest is offered first among
-- equally eligible agents), keeping the generation of the readiness that
-- last set it. ARGV: agent, preference.
local cur = redis.call('HGET', K_PREFS, ARGV[1])
local gen = '0'
if cur then
  gen = string.match(cur, '^([^|]*)')
end
redis.call('HSET', K_PREFS, ARGV[1], gen .. '|' .. ARGV[2])
rescore(ARGV[1])
return 1
