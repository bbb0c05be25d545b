-- Append an event to a user's stream and publish it to every node.
-- KEYS[1] = user's sequence counter, KEYS[2] = user's log (ZSET seq -> "seq json")
-- ARGV[1] = bus channel, ARGV[2] = event JSON, ARGV[3] = events kept,
-- ARGV[4] = log lifetime in seconds, ARGV[5] = user id, ARGV[6] = the floor of
-- a new stream (wall-clock microseconds): a stream started again after the
-- live state was lost continues above every number it gave out before, so a
-- console never takes a new event for one it has already seen. ARGV[7] = how
-- often the log is trimmed (every that many events).
local seq = redis.call('INCR', KEYS[1])
if seq == 1 then
  redis.call('SET', KEYS[1], ARGV[6])
  seq = tonumber(ARGV[6])
end
-- Written out whole: Lua would print a number this large in exponent form.
local n = string.format('%.0f', seq)
redis.call('ZADD', KEYS[2], n, n .. ' ' .. ARGV[2])
-- Trimmed every ARGV[7]th event: the log keeps its last ARGV[3] events and
-- fewer than ARGV[7] more (a resume reads the oldest kept, so it is exact
-- either way).
if seq % tonumber(ARGV[7]) == 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
end
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], '{"type":"deliver","to":{"kind":"user","user_id":' .. ARGV[5] ..
  '},"seq":' .. n .. ',"event":' .. ARGV[2] .. '}')
return seq
