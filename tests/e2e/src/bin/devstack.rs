//! The quick start: a local control plane, a local region with its agent bootstrapped through the real token
//! flow, and a sample model demo applied end to end. Prints what happened and where to look.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use e2e::api::field;
use e2e::{AgentState, Stack, StackOptions};
use serde_json::json;

const SAMPLE_DEMO: &str = include_str!("../../fixtures/sample-demo.yaml");

#[derive(Parser)]
#[command(about = "Run a local Edgefleet stack and deploy a sample demo")]
struct Args {
    /// Exit after the demo is deployed instead of keeping the stack up until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Use this Kubernetes cluster instead of the built-in API emulator.
    #[arg(long, env = "KUBECONFIG_FOR_DEVSTACK")]
    kubeconfig: Option<PathBuf>,
    /// Port of the REST API.
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Where the stack keeps its files (config, kubeconfig, agent state, process logs).
    #[arg(long, default_value = ".local/devstack")]
    dir: PathBuf,
}

fn step(text: &str) {
    println!("\n==> {text}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("clearing {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;

    step("Starting PostgreSQL, ClickHouse, the Kubernetes API emulator and the control plane");
    let stack = Stack::start(StackOptions {
        lease_seconds: 30,
        heartbeat_seconds: 5,
        poll_interval_ms: 2000,
        emulator_ready_delay_ms: 1500,
        kubeconfig: args.kubeconfig.clone(),
        dir: Some(dir.clone()),
        api_port: Some(args.api_port),
        ..StackOptions::default()
    })
    .await?;
    println!("    control plane API: {}", stack.api.base());
    println!("    agent endpoint:    {} (mTLS)", stack.agent_endpoint);
    println!("    cluster:           {}", stack.kubeconfig.display());

    step("Registering cloud account `local`, region `local-1` and cluster `local-dev`");
    let cloud = stack
        .api
        .post("/clouds", &json!({"name": "local", "provider": "local"}))
        .await?;
    let region = stack
        .api
        .post(
            "/regions",
            &json!({"cloud_account_id": field(&cloud, "id")?, "code": "local-1", "display_name": "Local region"}),
        )
        .await?;
    let cluster = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": field(&region, "id")?, "name": "local-dev"}),
        )
        .await?;
    let cluster_id = field(&cluster, "id")?;
    println!("    cluster id {cluster_id}: status {}", cluster["status"]);

    step("Minting a one-time bootstrap token and starting the agent with it");
    let bundle = stack.bootstrap_token(&cluster_id).await?;
    println!(
        "    token expires at {} (stored hashed; single use)",
        bundle["expires_at"]
    );
    let manifest_path = dir.join("agent-install.yaml");
    std::fs::write(
        &manifest_path,
        bundle["install"]["manifest"].as_str().unwrap_or_default(),
    )?;
    println!(
        "    in-cluster install manifest written to {}",
        manifest_path.display()
    );
    let agent = stack
        .spawn_agent(
            "node-agent",
            &field(&bundle, "token")?,
            &field(&bundle["install"], "ca_pem")?,
            AgentState::Dir(&dir.join("agent-state")),
        )
        .await?;
    let connected = stack
        .wait_agent_connected(&cluster_id, Duration::from_secs(60))
        .await?;
    let agent_state = &connected["agent"];
    println!(
        "    agent connected: version {}, Kubernetes {}, {} node(s), certificate valid until {}",
        agent_state["version"],
        agent_state["kubernetes_version"],
        agent_state["node_count"],
        agent_state["certificate_expires_at"]
    );

    step("Deploying the sample model demo (Namespace, ConfigMap, Deployment, Service)");
    let task = stack
        .api
        .post(
            &format!("/clusters/{cluster_id}/tasks"),
            &json!({"kind": "apply", "manifest": SAMPLE_DEMO, "wait_timeout_seconds": 120,
                    "idempotency_key": "devstack-sample-demo", "reason": "quick start sample demo"}),
        )
        .await?;
    let task_id = field(&task, "id")?;
    let finished = stack.wait_task(&task_id, Duration::from_secs(180)).await?;
    println!(
        "    task {task_id}: {} after {} attempt(s)",
        finished["state"], finished["attempts"]
    );
    for object in finished["objects"].as_array().into_iter().flatten() {
        println!(
            "      {:<11} {}/{} {} {}",
            object["outcome"].as_str().unwrap_or(""),
            object["kind"].as_str().unwrap_or(""),
            object["name"].as_str().unwrap_or(""),
            object["namespace"]
                .as_str()
                .map(|ns| format!("(namespace {ns})"))
                .unwrap_or_default(),
            object["message"].as_str().unwrap_or("")
        );
    }
    let logs = stack.api.get(&format!("/tasks/{task_id}/logs")).await?;
    let lines = logs["lines"].as_array().cloned().unwrap_or_default();
    let stored = stack.clickhouse_query(&format!(
        "SELECT count() FROM {{db}}.task_logs WHERE task_id = '{task_id}'"
    ))?;
    println!("    task log ({} lines in ClickHouse):", stored.trim());
    for line in &lines {
        println!(
            "      {} {:<5} {}",
            line["time"].as_str().unwrap_or(""),
            line["level"].as_str().unwrap_or(""),
            line["message"].as_str().unwrap_or("")
        );
    }
    println!("\n    kubectl get deploy,svc,pods -n demo-hello:");
    let listing = stack.kubectl(&["get", "deploy,svc,pods", "-n", "demo-hello"])?;
    for line in listing.lines() {
        println!("      {line}");
    }
    if finished["state"] != json!("succeeded") {
        anyhow::bail!(
            "the sample demo task did not succeed: {}",
            finished["error"]
        );
    }

    println!(
        "\nDone in {:.1} s. Everything ran for real except the Kubernetes API, which is the in-memory emulator",
        started.elapsed().as_secs_f64()
    );
    println!("(pass --kubeconfig to use a real cluster).");
    println!("\nWhere to look:");
    println!(
        "  API:          {}   (admin token: {})",
        stack.api.base(),
        stack.admin_token
    );
    println!(
        "  try:          curl -H 'Authorization: Bearer {}' {}/clusters",
        stack.admin_token,
        stack.api.base()
    );
    println!(
        "  kubectl:      kubectl --kubeconfig {} get all -A",
        stack.kubeconfig.display()
    );
    println!("  process logs: {}", harness::test_dir().display());
    println!("  agent log:    {}", agent.log_path().display());
    println!(
        "  metrics:      {}",
        stack.api.base().replace("/api/v1", "/metrics")
    );
    if args.once {
        return Ok(());
    }
    println!("\nThe stack keeps running; press Ctrl-C to stop it.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
