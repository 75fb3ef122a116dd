//! The `node-agent` binary: version output, configuration errors naming the key, and a clear stop when it has
//! neither credentials nor a bootstrap token.

use std::process::{Command, Output};

fn node_agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(args)
        .env_clear()
        .output()
        .expect("node-agent runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_prints_the_agent_version() {
    let output = node_agent(&["version"]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("node-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn configuration_errors_name_the_key() {
    let output = node_agent(&["run", "--state-dir", "/tmp/unused"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`control_plane` is required"),
        "{}",
        stderr(&output)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        "control_plane: https://cp:8443\nstate_dir: /tmp/x\nmax_concurrent_tasks: 0\n",
    )
    .unwrap();
    let output = node_agent(&["run", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`max_concurrent_tasks` is invalid"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn without_credentials_or_token_the_agent_stops_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n\
         users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let output = node_agent(&[
        "run",
        "--control-plane",
        "https://127.0.0.1:9",
        "--state-dir",
        state.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = stderr(&output);
    assert!(stderr.contains("no valid credentials"), "{stderr}");
    assert!(
        stderr.contains("--bootstrap-token-file or EDGEFLEET_BOOTSTRAP_TOKEN"),
        "{stderr}"
    );
}
