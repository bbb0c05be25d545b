-- Put a ticket in line at its rank, or move it there; an offered ticket stays.
-- ARGV: ticket, rank_ms, kind, entered_ms
if redis.call('HEXISTS', K_OFFERS, ARGV[1]) == 1 then
  return 0
end
back_in_line(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
