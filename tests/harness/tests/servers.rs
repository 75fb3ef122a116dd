//! The private PostgreSQL and ClickHouse servers start, hand out fresh databases and answer queries.

use regex::Regex;

#[test]
fn postgres_databases_are_fresh_and_separate() -> anyhow::Result<()> {
    let postgres = harness::postgres();
    let first = postgres.create_database("servers-test");
    let second = postgres.create_database("servers-test");
    assert_ne!(first, second);
    assert!(first.starts_with(&format!(
        "postgres://postgres@127.0.0.1:{}/servers_test_",
        postgres.port()
    )));

    postgres.query(
        &first,
        "CREATE TABLE clouds (id serial PRIMARY KEY, name text NOT NULL);
         INSERT INTO clouds (name) VALUES ('aws'), ('tencentcloud');",
    )?;
    let rows = postgres.query(&first, "SELECT id, name FROM clouds ORDER BY id")?;
    assert_eq!(rows, "1\taws\n2\ttencentcloud\n");

    let error = postgres
        .query(&second, "SELECT * FROM clouds")
        .expect_err("the table exists only in the first database");
    assert!(
        format!("{error:#}").contains("relation \"clouds\" does not exist"),
        "{error:#}"
    );
    Ok(())
}

#[test]
fn postgres_admin_url_reaches_the_superuser() -> anyhow::Result<()> {
    let postgres = harness::postgres();
    let who = postgres.query(
        &postgres.admin_url(),
        "SELECT current_user, current_database()",
    )?;
    assert_eq!(who, "postgres\tpostgres\n");
    Ok(())
}

#[test]
fn clickhouse_runs_merge_tree_tables() -> anyhow::Result<()> {
    let clickhouse = harness::clickhouse();
    let version = clickhouse.query("SELECT version()")?;
    assert!(
        Regex::new(r"^\d+\.\d+\.\d+")?.is_match(&version),
        "unexpected version {version:?}"
    );

    let database = clickhouse.create_database("servers-test");
    clickhouse.query(&format!(
        "CREATE TABLE {database}.log_lines (
             day Date, at DateTime, cluster String, level Enum8('info' = 1, 'error' = 2), message String
         ) ENGINE = MergeTree() PARTITION BY toYYYYMM(day) ORDER BY (cluster, at)"
    ))?;
    clickhouse.query(&format!(
        "INSERT INTO {database}.log_lines VALUES
             ('2024-01-31', '2024-01-31 23:59:59', 'edge-1', 'info', 'started'),
             ('2024-02-01', '2024-02-01 00:00:01', 'edge-1', 'error', 'failed'),
             ('2024-02-01', '2024-02-01 00:00:02', 'edge-2', 'info', 'started')"
    ))?;
    let rows = clickhouse.query(&format!(
        "SELECT cluster, level, message FROM {database}.log_lines WHERE day >= '2024-02-01' ORDER BY at"
    ))?;
    assert_eq!(rows, "edge-1\terror\tfailed\nedge-2\tinfo\tstarted\n");

    let partitions = clickhouse.query(&format!(
        "SELECT DISTINCT partition FROM system.parts WHERE database = '{database}' AND active ORDER BY partition"
    ))?;
    assert_eq!(partitions, "202401\n202402\n");
    Ok(())
}

#[test]
fn clickhouse_errors_carry_the_server_message() {
    let error = harness::clickhouse()
        .query("SELECT no_such_column")
        .expect_err("the column does not exist");
    let message = format!("{error:#}");
    assert!(
        message.contains("Unknown identifier: no_such_column"),
        "{message}"
    );
}

#[test]
fn both_servers_start_together() {
    let (postgres, clickhouse) = harness::postgres_and_clickhouse();
    assert_ne!(postgres.port(), 0);
    assert!(clickhouse.http_url().starts_with("http://127.0.0.1:"));
    assert_ne!(postgres.pid(), clickhouse.pid());
    assert!(postgres.log_path().is_file());
    assert!(clickhouse.log_path().is_file());
}
