//! Log delivery against a real ClickHouse: a row the server refuses for its content is kept in
//! `log_dead_letters` with the reason while the rest of its batch is stored, through the same batching sink the
//! agent streams use.

use std::time::Duration;

use clickhouse::Row;
use control_plane::config::ClickHouseConfig;
use control_plane::logs::{LogRow, LogSink, LogStore, SinkSettings};
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

#[tokio::test]
async fn a_refused_row_goes_to_the_dead_letter_table_and_the_rest_of_its_batch_is_stored() {
    let clickhouse = harness::clickhouse();
    let database = clickhouse.create_database("log_delivery");
    let store = LogStore::new(&ClickHouseConfig {
        url: clickhouse.http_url(),
        database: database.clone(),
        user: "default".into(),
        password: None,
    })
    .unwrap();
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
    let stored = sink.submit(rows).await;
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
