-- genTime's fraction (RFC 3161 §2.4.2 allows one; the TSA policy's precision may be 1ms or
-- 1us): microseconds past `gen_time`, so the record states the time the token states.
ALTER TABLE timestamps ADD COLUMN gen_time_us INTEGER NOT NULL DEFAULT 0;
