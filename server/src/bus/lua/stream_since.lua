-- The events of a user's stream after a resume point.
-- KEYS[1] = user's sequence counter, KEYS[2] = user's log; ARGV[1] = resume point
-- Returns {0} when some events after the point are gone, else {1, "seq json", ...}.
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local after = tonumber(ARGV[1])
if after > last then return {0} end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local oldest = last + 1
if first[2] then oldest = tonumber(first[2]) end
if after + 1 < oldest then return {0} end
local items = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
table.insert(items, 1, 1)
return items
