//! `diesel::table!` for the sync container's tables (migrations `*_sync_*`). Types are the
//! ones both backends share: `BigInt` for SQLite's INTEGER keys, `Timestamp` for DATETIME(6).

diesel::table! {
    sync_sequences (resource) {
        resource -> Text,
        last_seq -> BigInt,
        pruned_through -> BigInt,
        max_hlc -> BigInt,
    }
}

diesel::table! {
    sync_changelog (resource, seq) {
        resource -> Text,
        seq -> BigInt,
        first_seq -> Nullable<BigInt>,
        entity_id -> Text,
        op -> Text,
        payload -> Text,
        hlc -> BigInt,
        origin_region -> Text,
        schema_version -> Integer,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sync_outbox (id) {
        id -> BigInt,
        peer -> Text,
        resource -> Text,
        seq -> BigInt,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sync_peer_cursors (peer, resource) {
        peer -> Text,
        resource -> Text,
        peer_cursor -> Text,
        last_pull_at -> Timestamp,
        updated_at -> Timestamp,
        local_incarnation -> Text,
    }
}

diesel::table! {
    sync_peer_incarnations (peer) {
        peer -> Text,
        incarnation -> Text,
        previous -> Text,
        first_seen_at -> Timestamp,
        changed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sync_conflicts (id) {
        id -> BigInt,
        resource -> Text,
        entity_id -> Text,
        winner_hlc -> BigInt,
        winner_origin -> Text,
        winner_payload -> Text,
        loser_hlc -> BigInt,
        loser_origin -> Text,
        loser_payload -> Text,
        reason -> Text,
        detected_at -> Timestamp,
    }
}

diesel::table! {
    sync_alerts (id) {
        id -> BigInt,
        kind -> Text,
        subject -> Text,
        state -> Text,
        message -> Text,
        value -> BigInt,
        fired_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        notified_at -> Nullable<Timestamp>,
        notified_state -> Nullable<Text>,
    }
}

diesel::table! {
    sync_peer_flags (peer, resource) {
        peer -> Text,
        resource -> Text,
        needs_bootstrap_since -> Timestamp,
    }
}

diesel::table! {
    sync_refusals (kind, source) {
        kind -> Text,
        source -> Text,
        refused -> BigInt,
        last_at -> Timestamp,
    }
}

diesel::table! {
    sync_feed_acks (peer, resource) {
        peer -> Text,
        resource -> Text,
        acked_seq -> BigInt,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    sync_delivery (peer, resource) {
        peer -> Text,
        resource -> Text,
        delivered_through -> BigInt,
        claimed_through -> BigInt,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        last_delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_delivery_ranges (id) {
        id -> BigInt,
        peer -> Text,
        resource -> Text,
        first_seq -> BigInt,
        last_seq -> BigInt,
        attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_bootstraps (peer, resource) {
        peer -> Text,
        resource -> Text,
        next_cursor -> Text,
        rows_applied -> BigInt,
        started_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_quarantine (id) {
        id -> BigInt,
        peer -> Text,
        resource -> Text,
        seq -> BigInt,
        entity_id -> Text,
        entry -> Text,
        reason -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sync_verify_results (peer, resource) {
        peer -> Text,
        resource -> Text,
        differing -> BigInt,
        rows_local -> BigInt,
        rows_remote -> BigInt,
        checked_at -> Timestamp,
    }
}

diesel::table! {
    sync_parked_ops (resource, entity_id, hlc, origin_region) {
        resource -> Text,
        entity_id -> Text,
        hlc -> BigInt,
        origin_region -> Text,
        op -> Text,
        payload -> Text,
        waits_resource -> Text,
        waits_id -> Text,
        parked_at -> Timestamp,
        schema_version -> Integer,
    }
}

diesel::table! {
    sync_conflict_resolutions (conflict_id) {
        conflict_id -> BigInt,
        took -> Text,
        hlc -> BigInt,
        origin_region -> Text,
        resolved_by -> Text,
        why -> Text,
        resolved_at -> Timestamp,
    }
}

diesel::table! {
    sync_peer_clocks (peer) {
        peer -> Text,
        offset_ms -> BigInt,
        round_trip_ms -> Nullable<BigInt>,
        measured_at -> Timestamp,
    }
}

// A conflict and its resolution meet in one query (prune keeps a lately resolved conflict).
diesel::allow_tables_to_appear_in_same_query!(sync_conflicts, sync_conflict_resolutions);
