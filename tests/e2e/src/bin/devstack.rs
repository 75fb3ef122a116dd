//! The quick start: a local control plane; a local region whose cluster is provisioned with the real
//! `terraform` binary (state in a local S3 server) and gets its agent installed and bootstrapped by the
//! control plane; then a one-click deploy of a model demo from an image template. Prints what happened and where to look, and
//! destroys the cluster through Terraform when it stops.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use e2e::api::field;
use e2e::{AgentState, Stack, StackOptions};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Run a local Edgefleet stack and deploy a sample demo")]
struct Args {
    /// Exit after the demo is deployed (destroying the cluster) instead of running until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Use this Kubernetes cluster, registered by hand with a local agent process, instead of provisioning
    /// the local region through Terraform.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Port of the REST API.
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    /// Where the stack keeps its files (config, kubeconfig, Terraform working directories, agent state).
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
    let provision = args.kubeconfig.is_none();

    step("Starting PostgreSQL, ClickHouse, an S3 server and the control plane");
    let stack = Stack::start(
        StackOptions {
            lease_seconds: 30,
            heartbeat_seconds: 5,
            poll_interval_ms: 2000,
            ready_delay_ms: 1500,
            kubeconfig: args.kubeconfig.clone(),
            cluster: false,
            provisioning: provision,
            // The cluster's files under the quick start's own folder; only the configuration may say where.
            provisioning_overrides:
                json!({"stack_defaults": {"local": {"state_dir": dir.join("clusters/local-dev")}}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            dir: Some(dir.clone()),
            api_port: Some(args.api_port),
            ..StackOptions::default()
        }
        .with_templates(),
    )
    .await?;
    println!("    control plane API: {}", stack.api.base());
    println!("    admin console:     {}", stack.console_url);
    println!("    agent endpoint:    {} (mTLS)", stack.agent_endpoint);

    step("Registering cloud account `local` and region `local-1`");
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
    let region_id = field(&region, "id")?;

    let (cluster_id, kubeconfig, _agent) = if provision {
        let (cluster_id, kubeconfig) = provision_cluster(&stack, &region_id, &dir).await?;
        (cluster_id, kubeconfig, None)
    } else {
        let (cluster_id, agent) = register_existing(&stack, &region_id, &dir).await?;
        (cluster_id, stack.kubeconfig.clone(), Some(agent))
    };

    let deployed = deploy_demo(&stack, &region_id, &kubeconfig).await;
    println!(
        "\nDone in {:.1} s. Everything ran for real: the cluster is a real Kubernetes control plane (etcd,\n\
         kube-apiserver, controller-manager, scheduler); only its nodes are simulated, since there is no container\n\
         runtime: demo containers report Running without running, and the agent's image runs as a local process\n\
         (pass --kubeconfig to use a cluster of your own).",
        started.elapsed().as_secs_f64()
    );
    println!("\nWhere to look:");
    println!(
        "  console:      {}   (user: admin, password: {})",
        stack.console_url, stack.admin_password
    );
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
    let cli = harness::workspace_bin("edgefleet")
        .map(|bin| bin.display().to_string())
        .unwrap_or_else(|_| "edgefleet".into());
    println!(
        "  CLI:          echo {} | {cli} login --url {} --token-stdin",
        stack.admin_token,
        stack.api.base()
    );
    println!(
        "                {cli} clusters list; {cli} demos status hello-model --watch; {cli} demos logs hello-model -f   (docs/cli.md)"
    );
    println!(
        "  kubectl:      kubectl --kubeconfig {} get all -A",
        kubeconfig.display()
    );
    println!(
        "  metrics:      {}",
        stack.api.base().replace("/api/v1", "/metrics")
    );
    println!("  files:        {}", dir.display());
    if deployed.is_ok() && !args.once {
        println!(
            "\nThe stack keeps running; press Ctrl-C to stop it (the cluster is destroyed first)."
        );
        tokio::signal::ctrl_c().await?;
    }
    if provision {
        destroy_cluster(&stack, &cluster_id).await?;
    }
    deployed
}

/// Plans, then provisions the local region's cluster through Terraform; the control plane installs the agent.
async fn provision_cluster(
    stack: &Stack,
    region_id: &str,
    dir: &Path,
) -> anyhow::Result<(String, PathBuf)> {
    step("Planning cluster `local-dev` with Terraform (terraform/region-cluster/local)");
    let cluster_dir = dir.join("clusters/local-dev");
    let created = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region_id, "name": "local-dev", "plan_only": true, "provision": {}}),
        )
        .await?;
    let cluster_id = field(&created, "id")?;
    let plan = stack
        .wait_task(&field(&created["task"], "id")?, Duration::from_secs(300))
        .await?;
    anyhow::ensure!(
        plan["state"] == "succeeded",
        "the plan failed: {}",
        plan["error"]
    );
    println!(
        "    plan: {}",
        plan["output"]["plan"]["text"].as_str().unwrap_or("")
    );
    for change in plan["output"]["plan"]["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "      {} {}",
            change["action"].as_str().unwrap_or(""),
            change["address"].as_str().unwrap_or("")
        );
    }

    step(
        "Provisioning it: terraform apply, then the control plane installs the agent through the cluster's API",
    );
    let task = stack
        .api
        .post(&format!("/clusters/{cluster_id}/provision"), &json!({}))
        .await?;
    let task_id = field(&task, "id")?;
    let done = stack.wait_task(&task_id, Duration::from_secs(300)).await?;
    print_log(stack, &task_id, |line| {
        line["source"] != "terraform"
            || line["message"]
                .as_str()
                .is_some_and(|m| m.contains("complete"))
    })
    .await?;
    anyhow::ensure!(
        done["state"] == "succeeded",
        "provisioning failed: {}",
        done["error"]
    );
    let cluster = stack
        .wait_agent_connected(&cluster_id, Duration::from_secs(60))
        .await?;
    print_agent(&cluster);
    Ok((cluster_id, cluster_dir.join("kubeconfig")))
}

/// Registers the given cluster by hand and runs the agent as a local process with a one-time token.
async fn register_existing(
    stack: &Stack,
    region_id: &str,
    dir: &Path,
) -> anyhow::Result<(String, harness::Process)> {
    step(
        "Registering your cluster as `local-dev` and starting the agent with a one-time bootstrap token",
    );
    let cluster = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region_id, "name": "local-dev"}),
        )
        .await?;
    let cluster_id = field(&cluster, "id")?;
    let bundle = stack.bootstrap_token(&cluster_id).await?;
    std::fs::write(
        dir.join("agent-install.yaml"),
        bundle["install"]["manifest"].as_str().unwrap_or_default(),
    )?;
    println!(
        "    in-cluster install manifest written to {}",
        dir.join("agent-install.yaml").display()
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
    print_agent(&connected);
    Ok((cluster_id, agent))
}

fn print_agent(cluster: &Value) {
    let agent = &cluster["agent"];
    println!(
        "    cluster {}: agent connected, version {}, Kubernetes {}, {} node(s), certificate valid until {}",
        cluster["status"],
        agent["version"],
        agent["kubernetes_version"],
        agent["node_count"],
        agent["certificate_expires_at"]
    );
}

async fn print_log(
    stack: &Stack,
    task_id: &str,
    keep: impl Fn(&Value) -> bool,
) -> anyhow::Result<()> {
    let logs = stack.api.get(&format!("/tasks/{task_id}/logs")).await?;
    let stored = stack.clickhouse_query(&format!(
        "SELECT count() FROM {{db}}.task_logs WHERE task_id = '{task_id}'"
    ))?;
    println!(
        "    task log ({} lines in ClickHouse; excerpt):",
        stored.trim()
    );
    for line in logs["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| keep(l))
    {
        println!(
            "      {} {:<13} {:<5} {}",
            line["time"].as_str().unwrap_or(""),
            line["source"].as_str().unwrap_or(""),
            line["level"].as_str().unwrap_or(""),
            line["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

async fn deploy_demo(stack: &Stack, region_id: &str, kubeconfig: &Path) -> anyhow::Result<()> {
    step("One-click deploy of the `gradio-demo` template to region `local-1`");
    let demo = stack
        .api
        .post(
            "/demos",
            &json!({"name": "hello-model", "template": "gradio-demo", "region": region_id,
                    "env": {"MODEL_NAME": "distilbert-base-uncased"}, "idempotency_key": "devstack-demo"}),
        )
        .await?;
    let demo_id = field(&demo, "id")?;
    let mut demo = demo;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while demo["status"] != "online"
        && demo["error"].is_null()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        demo = stack.api.get(&format!("/demos/{demo_id}")).await?;
    }
    println!(
        "    demo {demo_id}: status {}, url {}",
        demo["status"], demo["url"]
    );
    println!(
        "    placement: {}",
        demo["region_reason"].as_str().unwrap_or("-")
    );
    for step in demo["steps"].as_array().into_iter().flatten() {
        println!(
            "      {:<15} {:<10} {}",
            step["name"].as_str().unwrap_or(""),
            step["state"].as_str().unwrap_or(""),
            step["message"].as_str().unwrap_or("")
        );
    }
    anyhow::ensure!(
        demo["status"] == "online",
        "the demo did not go online: {}",
        demo["error"]
    );
    let task_id = demo["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|s| s["task_id"].as_str())
        .context("the apply step has no task")?
        .to_string();
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
                .filter(|ns| !ns.is_empty())
                .map(|ns| format!("(namespace {ns})"))
                .unwrap_or_default(),
            object["message"].as_str().unwrap_or("")
        );
    }
    // The agent's last log lines travel in their own batch, a moment behind the result.
    let _ = harness::wait_until(
        "the agent's last task log line",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let logs = stack
                .api
                .get(&format!("/tasks/{task_id}/logs"))
                .await
                .unwrap_or_default();
            logs["lines"].as_array().into_iter().flatten().any(|l| {
                l["message"].as_str().is_some_and(|m| {
                    m.starts_with("task succeeded") || m.starts_with("task failed")
                })
            })
        },
    )
    .await;
    print_log(stack, &task_id, |_| true).await?;
    println!("\n    kubectl get deploy,svc,ingress,pods -n demo-hello-model:");
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "deploy,svc,ingress,pods", "-n", "demo-hello-model"])
        .output()
        .context("running kubectl")?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("      {line}");
    }
    anyhow::ensure!(
        finished["state"] == "succeeded",
        "the sample demo task did not succeed: {}",
        finished["error"]
    );
    Ok(())
}

async fn destroy_cluster(stack: &Stack, cluster_id: &str) -> anyhow::Result<()> {
    step("Destroying cluster `local-dev` through Terraform");
    let (_, task) = stack
        .api
        .call(Method::DELETE, &format!("/clusters/{cluster_id}"), None)
        .await?;
    let done = stack
        .wait_task(&field(&task, "id")?, Duration::from_secs(300))
        .await?;
    let cluster = stack.api.get(&format!("/clusters/{cluster_id}")).await?;
    println!(
        "    destroy {}: cluster {}, agent revoked",
        done["state"], cluster["status"]
    );
    Ok(())
}
