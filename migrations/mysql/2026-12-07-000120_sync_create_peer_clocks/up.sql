-- How far each peer's wall clock is from ours (ADR 0016): `offset_ms` = peer − us, measured
-- from the `Regionsync-Clock` header of the sync exchanges. `round_trip_ms` is set when the
-- measurement came from a request this region made (NTP-style, error at most half of it) and
-- NULL when it came from a request the peer made (one way: the transit time is unknown).
-- One row per peer, overwritten at most every ~10 s per process; the `clock_skew` alert and
-- `regionsync_peer_clock_offset_seconds` read it.
CREATE TABLE sync_peer_clocks (
    peer VARCHAR(32) NOT NULL PRIMARY KEY,
    offset_ms BIGINT NOT NULL,
    round_trip_ms BIGINT NULL,
    measured_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
