//! Log storage against a real ClickHouse (18.16): a row the server refuses for its content is kept in
//! `log_dead_letters` with the reason while the rest of its batch is stored, through the same batching sink the
//! agent streams use; retention deletes old rows; a table from before line identities and streams is upgraded in place.

use std::time::Duration;

use clickhouse::Row;
use control_plane::config::ClickHouseConfig;
use control_plane::logs::{
    DemoLogQuery, LineStream, LogRow, LogSink, LogStore, SinkSettings, TaskLogLine,
};
use control_plane::metrics::Metrics;
use serde::{Deserialize, Serialize};

/// A table of the test's own whose default expression refuses the message `poison`, the way a constraint
/// would on a newer server.
#[derive(Debug, Clone, Serialize, Deserialize, Row)]
struct Probe {
    n: u32,
    message: String,
}

impl LogRow for Probe {
    const TABLE: &'static str = "probe";
}

fn store(clickhouse: &harness::ClickHouse, database: &str) -> LogStore {
    LogStore::new(&ClickHouseConfig {
        url: clickhouse.http_url(),
        database: database.to_owned(),
        user: "default".into(),
        password: None,
        retention: Default::default(),
    })
    .unwrap()
}

#[tokio::test]
async fn a_refused_row_goes_to_the_dead_letter_table_and_the_rest_of_its_batch_is_stored() {
    let clickhouse = harness::clickhouse();
    let database = clickhouse.create_database("log_delivery");
    let store = store(clickhouse, &database);
    store.ensure_schema().await.unwrap();
    clickhouse
        .query(&format!(
            "CREATE TABLE {database}.probe (n UInt32, message String,
                 checked UInt8 DEFAULT throwIf(message = 'poison'))
             ENGINE = MergeTree() ORDER BY n"
        ))
        .unwrap();

    let metrics = Metrics::new();
    let sink = LogSink::start(store, SinkSettings::default(), metrics.clone());
    let rows: Vec<Probe> = (0..10)
        .map(|n| Probe {
            n,
            message: if n == 6 {
                "poison".into()
            } else {
                format!("line {n}")
            },
        })
        .collect();
    let stored = sink.submit(uuid::Uuid::new_v4(), rows).await;
    tokio::time::timeout(Duration::from_secs(30), stored)
        .await
        .expect("the sink answers")
        .unwrap()
        .expect("the batch is acknowledged: nine rows stored, one kept aside");

    let stored = clickhouse
        .query(&format!("SELECT n FROM {database}.probe ORDER BY n"))
        .unwrap();
    assert_eq!(stored, "0\n1\n2\n3\n4\n5\n7\n8\n9\n");
    let letters = clickhouse
        .query(&format!(
            "SELECT source_table, row, reason FROM {database}.log_dead_letters FORMAT JSONEachRow"
        ))
        .unwrap();
    let letters: Vec<serde_json::Value> = letters
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["source_table"], "probe");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(letters[0]["row"].as_str().unwrap()).unwrap(),
        serde_json::json!({"n": 6, "message": "poison"})
    );
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(reason.contains("throwIf"), "{reason}");
    let exported = metrics.encode();
    assert!(
        exported.contains("edgefleet_log_lines_stored_total 9"),
        "{exported}"
    );
    assert!(
        exported.contains("edgefleet_log_lines_dead_lettered_total 1"),
        "{exported}"
    );
}

#[tokio::test]
async fn a_cluster_flooding_the_writer_does_not_hold_back_another_clusters_lines() {
    let clickhouse = harness::clickhouse();
    let database = clickhouse.create_database("log_fairness");
    let store = store(clickhouse, &database);
    store.ensure_schema().await.unwrap();
    clickhouse
        .query(&format!(
            "CREATE TABLE {database}.probe (n UInt32, message String) ENGINE = MergeTree() ORDER BY n"
        ))
        .unwrap();
    let sink = LogSink::start(
        store,
        SinkSettings {
            max_lines: 10_000,
            ..SinkSettings::default()
        },
        Metrics::new(),
    );
    let rows = |from: u32, count: u32| -> Vec<Probe> {
        (from..from + count)
            .map(|n| Probe {
                n,
                message: format!("line {n}"),
            })
            .collect()
    };
    // 40 submissions of 5,000 lines (20 inserts' worth) from one cluster, then one line from another.
    let flood = uuid::Uuid::new_v4();
    let mut flooded = Vec::new();
    for i in 0..40 {
        flooded.push(sink.submit(flood, rows(i * 5_000, 5_000)).await);
    }
    let quiet = sink.submit(uuid::Uuid::new_v4(), rows(1_000_000, 1)).await;
    tokio::time::timeout(Duration::from_secs(60), quiet)
        .await
        .expect("the quiet cluster's line is stored")
        .unwrap()
        .unwrap();
    let mut still_waiting = Vec::new();
    for mut answer in flooded {
        match answer.try_recv() {
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => still_waiting.push(answer),
            done => done.unwrap().unwrap(),
        }
    }
    // In turn, the quiet line goes into the first or second insert: at least 36 of the flood's are still queued.
    assert!(
        still_waiting.len() >= 36,
        "only {} of the flood's submissions were still waiting",
        still_waiting.len()
    );
    for answer in still_waiting {
        tokio::time::timeout(Duration::from_secs(120), answer)
            .await
            .expect("the flood is stored too")
            .unwrap()
            .unwrap();
    }
    let count = clickhouse
        .query(&format!("SELECT count() FROM {database}.probe"))
        .unwrap();
    assert_eq!(count.trim(), "200001");
}

#[tokio::test]
async fn a_task_log_line_stored_twice_is_read_once_by_its_identity() {
    let clickhouse = harness::clickhouse();
    let database = clickhouse.create_database("task_log_identity");
    let store = store(clickhouse, &database);
    store.ensure_schema().await.unwrap();
    let line = |n: u64, source_id: &str, message: &str| {
        TaskLogLine::new(
            1_700_000_000_000_000_000 + i64::try_from(n % 2).unwrap(),
            "c-1".into(),
            "t-1".into(),
            "info".into(),
            message.into(),
            "{}".into(),
            "agent",
        )
        .identified(source_id.into(), n)
    };
    // An agent's batch resent after a lost ack; two lines of different processes with the same number; and an old
    // agent's (no identity) two distinct lines, one of them resent.
    let batch = vec![line(0, "agent-a", "applied"), line(1, "agent-a", "ready")];
    let rows: Vec<TaskLogLine> = batch
        .iter()
        .chain(&batch)
        .cloned()
        .chain([
            line(0, "agent-b", "after a restart"),
            line(7, "", "old agent: first"),
            line(7, "", "old agent: second"),
            line(7, "", "old agent: second"),
        ])
        .collect();
    store.deliver(&rows, 1).await.unwrap();
    let read: Vec<String> = store
        .task_logs("c-1", "t-1", i64::MIN, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|line| line.message)
        .collect();
    let mut sorted = read.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "after a restart",
            "applied",
            "old agent: first",
            "old agent: second",
            "ready"
        ],
        "each line once: {read:?}"
    );
}

#[tokio::test]
async fn rows_past_their_retention_are_deleted_and_newer_ones_kept() {
    let clickhouse = harness::clickhouse();
    let database = clickhouse.create_database("log_retention");
    let store = store(clickhouse, &database);
    store.ensure_schema().await.unwrap();
    // Days since the epoch: 20,000 is 2024-10-04.
    for (date, message) in [
        (19_980u16, "old"),
        (19_999, "last day kept"),
        (20_005, "new"),
    ] {
        clickhouse
            .query(&format!(
                "INSERT INTO {database}.task_logs (date, ts_nanos, task_id, message) VALUES ({date}, 1, 't', '{message}')"
            ))
            .unwrap();
    }
    assert_eq!(store.delete_before("task_logs", 19_999).await.unwrap(), 1);
    // The deletion is a mutation ClickHouse runs in the background.
    harness::wait_until(
        "the old row deleted",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            clickhouse
                .query(&format!(
                    "SELECT message FROM {database}.task_logs ORDER BY date"
                ))
                .unwrap()
                == "last day kept\nnew\n"
        },
    )
    .await
    .unwrap();
    assert_eq!(
        store.delete_before("task_logs", 19_999).await.unwrap(),
        0,
        "nothing left to delete: no second mutation"
    );
}

#[tokio::test]
async fn log_tables_from_before_line_identities_get_them_and_their_rows_stay_readable() {
    let clickhouse = harness::clickhouse();
    let database = clickhouse.create_database("log_upgrade");
    clickhouse
        .query(&format!(
            "CREATE TABLE {database}.demo_logs (date Date, ts_nanos Int64, demo_id String, cluster_id String,
                 region String, namespace String, pod String, container String, level String, message String)
             ENGINE = MergeTree() PARTITION BY toYYYYMM(date) ORDER BY (demo_id, ts_nanos)"
        ))
        .unwrap();
    for (ts, message) in [(1, "first"), (2, "second"), (2, "second")] {
        clickhouse
            .query(&format!(
                "INSERT INTO {database}.demo_logs VALUES (today(), {ts}, 'd', 'c', 'r', 'ns', 'web-1', 'app', 'info', '{message}')"
            ))
            .unwrap();
    }
    clickhouse
        .query(&format!(
            "CREATE TABLE {database}.task_logs (date Date, ts_nanos Int64, cluster_id String, task_id String,
                 level String, message String, fields String, source String)
             ENGINE = MergeTree() PARTITION BY toYYYYMM(date) ORDER BY (task_id, ts_nanos)"
        ))
        .unwrap();
    for _ in 0..2 {
        clickhouse
            .query(&format!(
                "INSERT INTO {database}.task_logs VALUES (today(), 5, 'c', 't', 'info', 'applied', '{{}}', 'agent')"
            ))
            .unwrap();
    }
    let store = store(clickhouse, &database);
    store.ensure_schema().await.unwrap();
    store.ensure_schema().await.unwrap();
    let task_lines = store.task_logs("c", "t", i64::MIN, 10).await.unwrap();
    assert_eq!(
        task_lines.len(),
        1,
        "the stored copy is read once: {task_lines:?}"
    );
    assert_eq!(task_lines[0].source_id, "");

    let rows = store
        .demo_logs(&DemoLogQuery {
            demo_id: Some("d".into()),
            limit: 10,
            ..DemoLogQuery::default()
        })
        .await
        .unwrap();
    let messages: Vec<&str> = rows.iter().map(|row| row.message.as_str()).collect();
    assert_eq!(
        messages,
        ["first", "second"],
        "the stored copy is read once"
    );
    assert!(rows.iter().all(|row| row.pod_uid == "web-1"), "{rows:?}");
    assert_ne!(rows[0].seq, rows[1].seq);
    // From before streams: every row was a container's.
    assert!(rows.iter().all(|row| row.stream == "container"), "{rows:?}");
    let events = store
        .demo_logs(&DemoLogQuery {
            demo_id: Some("d".into()),
            stream: Some(LineStream::Event),
            limit: 10,
            ..DemoLogQuery::default()
        })
        .await
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
}
