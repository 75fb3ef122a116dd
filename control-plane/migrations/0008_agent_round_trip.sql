-- The round trip to a cluster's agent (Ping/Pong on its stream), smoothed; `auto` demo placement prefers low.
ALTER TABLE clusters ADD COLUMN agent_rtt_ms double precision;
