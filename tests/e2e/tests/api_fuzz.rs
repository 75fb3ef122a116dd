//! Schemathesis against the control plane's own OpenAPI document: generated requests, valid and not, to every
//! operation as an admin; none may get a 5xx. Bounded by a time budget so CI stays predictable.

use std::process::Command;

use e2e::{Stack, StackOptions};

/// Seconds schemathesis may spend in all.
const BUDGET_SECONDS: &str = "180";

#[tokio::test(flavor = "multi_thread")]
async fn generated_requests_never_get_a_server_error() {
    let stack = Stack::start(StackOptions {
        cluster: false,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    // Something for the operations on existing objects to find.
    stack.register_cluster("fuzzed").await.unwrap();
    let installed = Command::new("bash")
        .arg(harness::workspace_root().join("scripts/install-schemathesis.sh"))
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "installing schemathesis failed: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let st = String::from_utf8(installed.stdout)
        .unwrap()
        .trim()
        .to_string();
    let report = stack.dir.join("schemathesis");
    let output = Command::new(&st)
        .arg("run")
        .arg(format!("{}/openapi.json", stack.api.base()))
        .args(["--url", stack.api.base()])
        .args(["--checks", "not_a_server_error"])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", stack.admin_token),
        ])
        .args(["--max-time", BUDGET_SECONDS])
        .args(["--max-examples", "25", "--workers", "1", "--seed", "1"])
        .args(["--generation-allow-x00", "true"])
        // Its stateful phase would revoke the run's own token (listed by GET /api-tokens), and everything
        // after that would only be 401s.
        .args(["--exclude-path", "/api-tokens/{id}"])
        .arg("--report-dir")
        .arg(&report)
        .args(["--report", "junit"])
        // Its example cache (`.schemathesis/`) goes with the run, not into the repository.
        .current_dir(&stack.dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The summary (operations, cases, failures) is part of the test's output.
    println!("{text}");
    assert!(
        output.status.success(),
        "schemathesis found server errors (report in {}):\n{text}",
        report.display()
    );
    assert!(
        text.contains("passed"),
        "schemathesis ran no operations:\n{text}"
    );
}
