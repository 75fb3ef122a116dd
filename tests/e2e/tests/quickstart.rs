//! The README's main-job command (`devstack`, run by scripts/quickstart.sh) works end to end.

use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_deploys_the_sample_demo_and_says_what_happened() {
    let dir = harness::test_dir().join("devstack");
    let mut command = Command::new(harness::workspace_bin("devstack").unwrap());
    command
        .arg("--once")
        .arg("--api-port")
        .arg(harness::free_port().to_string())
        .arg("--dir")
        .arg(&dir);
    let mut devstack = harness::Process::spawn("devstack", command).unwrap();
    let status = devstack
        .wait_for_exit(Duration::from_secs(240))
        .await
        .unwrap();
    let output = devstack.log_text();
    assert!(status.success(), "devstack failed:\n{output}");
    for expected in [
        "plan: 1 to add, 0 to change, 0 to destroy",
        "Apply complete!",
        "agent install manifest applied",
        "\"ready\": agent connected, version",
        "\"succeeded\" after 1 attempt(s)",
        "applied     Deployment/hello-model",
        "lines in ClickHouse",
        "deployment.apps/hello-model",
        "admin token: efa_",
        "/console/   (user: admin, password: ",
        "status \"online\", url \"http://hello-model.local-dev.demos.localhost/\"",
        "publish_url     succeeded",
        "destroy \"succeeded\": cluster \"deleted\", agent revoked",
    ] {
        assert!(
            output.contains(expected),
            "missing {expected:?} in:\n{output}"
        );
    }
}
