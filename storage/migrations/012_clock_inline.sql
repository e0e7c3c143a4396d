-- from_us and to_us (003) are declared IMMUTABLE, but their bodies were not:
-- timestamptz + interval and extract(epoch FROM timestamptz) are STABLE (they
-- consult the session's time zone in general). PostgreSQL does not inline an
-- SQL function whose body is more volatile than its declaration, so every
-- call went through the SQL-function executor: ~0.5 us per call instead of
-- ~0.1, three calls per memory in a consolidation snapshot and one per
-- updated row in every phase commit (measured with bench/consolidation).
-- The same values, computed by operators that are IMMUTABLE: a timestamp
-- without time zone shifted by the microseconds and read as UTC, and the
-- interval between the instant and the epoch. Exact to the microsecond for
-- every bigint the daemon passes (integration test migrations.clock_*).
CREATE OR REPLACE FUNCTION engram.from_us(us bigint) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN ('epoch'::timestamp + us * interval '1 microsecond') AT TIME ZONE 'UTC';

CREATE OR REPLACE FUNCTION engram.to_us(t timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN (extract(epoch FROM t - 'epoch'::timestamptz) * 1000000)::bigint;
