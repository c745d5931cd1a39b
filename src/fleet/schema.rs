//! The fleet's tables, created and migrated at start: numbered steps, each applied once,
//! all in one transaction under a transaction-level advisory lock, so instances that
//! start at the same moment apply them one after the other and none twice.

use super::db::FleetError;
use deadpool_postgres::Client;

/// An arbitrary key for banyan's schema lock ("banyan" in ASCII, as a number).
const LOCK: i64 = 0x62_61_6e_79_61_6e;

/// The steps, in order; a step never changes once released, a new one is added.
const STEPS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE banyan_instances (
        instance text PRIMARY KEY,
        pid integer NOT NULL,
        started_at timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        config_version bigint,
        config_hash text,
        config_error text
    );
    CREATE TABLE banyan_config_versions (
        number bigserial PRIMARY KEY,
        hash text NOT NULL,
        body text NOT NULL,
        origin text NOT NULL,
        instance text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );",
    ),
    (
        2,
        "CREATE TABLE banyan_figures (
        instance text NOT NULL,
        route text NOT NULL,
        new_requests bigint NOT NULL,
        new_errors bigint NOT NULL,
        legacy_requests bigint NOT NULL,
        legacy_errors bigint NOT NULL,
        compared bigint NOT NULL,
        matches bigint NOT NULL,
        fields text NOT NULL,
        new_latency bigint[] NOT NULL,
        legacy_latency bigint[] NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (instance, route)
    );
    CREATE TABLE banyan_ramps (
        route text NOT NULL,
        fingerprint text NOT NULL,
        saved text NOT NULL,
        revision bigint NOT NULL,
        instance text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (route, fingerprint)
    );
    ALTER TABLE banyan_instances ADD COLUMN leader boolean NOT NULL DEFAULT false;",
    ),
    (
        3,
        "CREATE TABLE banyan_diff_groups (
        signature text PRIMARY KEY,
        route text NOT NULL,
        fields text NOT NULL,
        count bigint NOT NULL,
        first_seen double precision NOT NULL,
        last_seen double precision NOT NULL
    );
    CREATE INDEX banyan_diff_groups_route_seen ON banyan_diff_groups (route, last_seen);
    CREATE TABLE banyan_diff_samples (
        id bigserial PRIMARY KEY,
        signature text NOT NULL,
        route text NOT NULL,
        instance text NOT NULL,
        at double precision NOT NULL,
        request json NOT NULL,
        primary_response json NOT NULL,
        shadow_response json NOT NULL,
        differences json NOT NULL,
        primary_ms double precision NOT NULL,
        shadow_ms double precision NOT NULL
    );
    CREATE INDEX banyan_diff_samples_signature ON banyan_diff_samples (signature, id);
    CREATE INDEX banyan_diff_samples_route_at ON banyan_diff_samples (route, at);
    CREATE INDEX banyan_diff_samples_at ON banyan_diff_samples (at);
    CREATE TABLE banyan_shadow_figures (
        instance text NOT NULL,
        route text NOT NULL,
        compared bigint NOT NULL,
        matches bigint NOT NULL,
        mismatches bigint NOT NULL,
        errors bigint NOT NULL,
        fields json NOT NULL,
        minutes json NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (instance, route)
    );",
    ),
    (
        4,
        "ALTER TABLE banyan_instances ADD COLUMN ramps text NOT NULL DEFAULT '{}';",
    ),
];

/// The schema version this build needs.
pub fn latest() -> i32 {
    STEPS.last().map_or(0, |(n, _)| *n)
}

/// Bring the schema to `latest()`; returns the steps applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, FleetError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS banyan_schema (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM banyan_schema", &[])
        .await?;
    let at: i32 = row.get(0);
    let mut applied = Vec::new();
    for (version, sql) in STEPS.iter().filter(|(v, _)| *v > at) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO banyan_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}
