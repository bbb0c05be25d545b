-- Append an event to a user's stream and publish it to every node.
-- KEYS[1] = user's sequence counter, KEYS[2] = user's log (ZSET seq -> "seq json")
-- ARGV[1] = bus channel, ARGV[2] = event JSON, ARGV[3] = events kept,
-- ARGV[4] = log lifetime in seconds, ARGV[5] = user id
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, seq .. ' ' .. ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], '{"type":"deliver","to":{"kind":"user","user_id":' .. ARGV[5] ..
  '},"seq":' .. seq .. ',"event":' .. ARGV[2] .. '}')
return seq
