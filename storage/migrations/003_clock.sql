-- Time as the daemon sees it. The daemon takes every timestamp it writes
-- from its injectable clock (runtime/clock.hpp) and passes it as microseconds
-- since the Unix epoch; these turn it into timestamptz and back.
CREATE FUNCTION engram.from_us(us bigint) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN 'epoch'::timestamptz + us * interval '1 microsecond';

CREATE FUNCTION engram.to_us(t timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN (extract(epoch FROM t) * 1000000)::bigint;
