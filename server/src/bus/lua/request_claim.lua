-- Claim a console command's request id for a user.
-- KEYS[1] = user's replies (HASH request id -> reply JSON, "" while running)
-- ARGV[1] = request id, ARGV[2] = lifetime in seconds
-- Returns {"new"}, {"running"} or {"done", reply}.
local claimed = redis.call('HSETNX', KEYS[1], ARGV[1], '')
redis.call('EXPIRE', KEYS[1], ARGV[2])
if claimed == 1 then return {'new'} end
local reply = redis.call('HGET', KEYS[1], ARGV[1])
if reply == '' then return {'running'} end
return {'done', reply}
