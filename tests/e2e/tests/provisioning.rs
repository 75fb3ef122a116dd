//! End-to-end Terraform provisioning with the real `terraform` binary and the `local` stack: state in a real
//! S3 server, the agent installed through the new cluster's API and connecting by itself, destroy, failures,
//! retries and cancellation.

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use e2e::api::field;
use e2e::{Stack, StackOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PROVISION_WAIT: Duration = Duration::from_secs(180);

async fn provisioning_stack() -> (Stack, String) {
    provisioning_stack_with(serde_json::Map::new()).await
}

async fn provisioning_stack_with(overrides: serde_json::Map<String, Value>) -> (Stack, String) {
    // Every cluster here is one Terraform provisions.
    let stack = Stack::start(StackOptions {
        provisioning: true,
        provisioning_overrides: overrides,
        cluster: false,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (_, region_id) = stack.register_region("lab", "lab-1").await.unwrap();
    (stack, region_id)
}

fn config_value(stack: &Stack, pointer: &str) -> String {
    let text = std::fs::read_to_string(stack.dir.join("control-plane.yaml")).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    config
        .pointer(pointer)
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string()
}

async fn state_object(stack: &Stack, key: &str) -> Option<Value> {
    let s3 = harness::s3();
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client)
        .endpoint_url(s3.endpoint())
        .force_path_style(true)
        .region(Region::new(s3.region().to_owned()))
        .credentials_provider(Credentials::new(
            s3.access_key(),
            s3.secret_key(),
            None,
            None,
            "test",
        ))
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let bucket = config_value(stack, "/provisioning/state/bucket");
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = object.body.collect().await.unwrap().into_bytes();
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn resource_count(state: &Value) -> usize {
    state["resources"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .filter(|r| r["instances"].as_array().is_some_and(|i| !i.is_empty()))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioned_cluster_gets_its_agent_by_itself_and_is_destroyed_cleanly() {
    let (stack, region_id) = provisioning_stack().await;

    // Preview first: the plan lists what would be created, nothing is.
    let created = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region_id, "name": "prov-1",
                    "provision": {"variables": {"node_count": 2}}, "plan_only": true}),
        )
        .await
        .unwrap();
    let cluster_id = field(&created, "id").unwrap();
    assert_eq!(created["provisioning"], "terraform");
    assert_eq!(created["task"]["kind"], "terraform_plan");
    let plan = stack
        .wait_task(&field(&created["task"], "id").unwrap(), PROVISION_WAIT)
        .await
        .unwrap();
    assert_eq!(plan["state"], "succeeded", "{plan}");
    let summary = &plan["output"]["plan"];
    assert!(
        summary["text"]
            .as_str()
            .unwrap()
            .ends_with("0 to change, 0 to destroy"),
        "{summary}"
    );
    assert!(
        summary["counts"]["create"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert!(!summary["resource_changes"].as_array().unwrap().is_empty());
    let planned = stack
        .api
        .get(&format!("/clusters/{cluster_id}"))
        .await
        .unwrap();
    assert_eq!(planned["status"], "planned");
    let state_key = format!("clusters/{cluster_id}/terraform.tfstate");
    assert!(
        state_object(&stack, &state_key)
            .await
            .is_none_or(|s| resource_count(&s) == 0)
    );

    // Apply: Terraform creates the cluster, the control plane installs the agent, the agent connects.
    let (status, task) = stack
        .api
        .call(
            Method::POST,
            &format!("/clusters/{cluster_id}/provision"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    let task_id = field(&task, "id").unwrap();
    let applied = stack.wait_task(&task_id, PROVISION_WAIT).await.unwrap();
    assert_eq!(applied["state"], "succeeded", "{applied}");
    let ready = stack
        .wait_agent_connected(&cluster_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert!(
        ready["api_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{ready}"
    );
    assert_eq!(
        ready["agent"]["node_count"], 2,
        "the agent reports the provisioned cluster's nodes: {ready}"
    );
    let state = state_object(&stack, &state_key)
        .await
        .expect("state object in S3");
    assert!(resource_count(&state) >= 1, "{state}");

    // Terraform's own output reaches the task log in ClickHouse (through the outbox), line by line.
    let query = format!(
        "SELECT source, message FROM {{db}}.task_logs WHERE task_id = '{task_id}' ORDER BY ts_nanos FORMAT TSV"
    );
    harness::wait_until(
        "Terraform's output and the install in the task log",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            stack.clickhouse_query(&query).is_ok_and(|rows| {
                rows.contains("terraform\tApply complete!")
                    && rows.contains("agent install manifest applied")
            })
        },
    )
    .await
    .unwrap();

    // The agent installed by the control plane runs tasks on the new cluster.
    let work = stack
        .api
        .post(
            &format!("/clusters/{cluster_id}/tasks"),
            &json!({"kind": "apply", "manifest": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: on-new-cluster\n"}),
        )
        .await
        .unwrap();
    let work = stack
        .wait_task(&field(&work, "id").unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(work["state"], "succeeded", "{work}");

    // No drift right after provisioning.
    let drift = stack
        .api
        .post(&format!("/clusters/{cluster_id}/drift-check"), &json!({}))
        .await
        .unwrap();
    let drift = stack
        .wait_task(&field(&drift, "id").unwrap(), PROVISION_WAIT)
        .await
        .unwrap();
    assert_eq!(drift["output"]["drift"], "in_sync", "{drift}");
    let checked = stack
        .api
        .get(&format!("/clusters/{cluster_id}"))
        .await
        .unwrap();
    assert_eq!(checked["drift_status"], "in_sync");

    // Secrets: the state store's secret key reached Terraform only through its environment.
    let secret = config_value(&stack, "/provisioning/state/secret_access_key");
    let all_logs = stack
        .clickhouse_query("SELECT message, fields FROM {db}.task_logs FORMAT TSV")
        .unwrap();
    assert!(
        !all_logs.contains(&secret),
        "secret in ClickHouse task logs"
    );
    assert!(
        !stack.control_plane.log_text().contains(&secret),
        "secret in the control plane's log"
    );
    let work_dir = stack.dir.join("terraform-work");
    for file in walk(&work_dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret found in {}",
            file.display()
        );
    }
    // What Terraform and the local cluster write there is readable by the control plane's user only.
    use std::os::unix::fs::PermissionsExt;
    let private = [
        "kubeconfig",
        "backend.hcl",
        "edgefleet.auto.tfvars.json",
        "plan.tfplan",
        "terraform.tfstate",
    ];
    let checked: Vec<_> = walk(&work_dir)
        .into_iter()
        .filter(|file| {
            file.file_name()
                .is_some_and(|name| private.iter().any(|p| name == *p))
        })
        .collect();
    assert!(
        checked.iter().any(|file| file.ends_with("kubeconfig")),
        "the local cluster's kubeconfig is in the working directory: {checked:?}"
    );
    for file in &checked {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", file.display());
    }

    // Destroy: Terraform removes everything, the cluster is deleted and its agent revoked.
    let destroyed = stack
        .destroy_cluster(&cluster_id, PROVISION_WAIT)
        .await
        .unwrap();
    assert_eq!(destroyed["state"], "succeeded", "{destroyed}");
    let gone = stack
        .api
        .get(&format!("/clusters/{cluster_id}"))
        .await
        .unwrap();
    assert_eq!(gone["status"], "deleted");
    let revoked = stack
        .postgres_query(&format!(
            "SELECT count(*) FROM agent_certificates WHERE cluster_id = '{cluster_id}' AND revoked_at IS NULL"
        ))
        .unwrap();
    assert_eq!(revoked.trim(), "0");
    let state = state_object(&stack, &state_key)
        .await
        .expect("state object in S3");
    assert_eq!(resource_count(&state), 0, "{state}");

    let metrics = reqwest::get(stack.api.base().replace("/api/v1", "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in [
        "terraform_plan",
        "terraform_apply",
        "terraform_drift",
        "terraform_destroy",
    ] {
        let line =
            format!("edgefleet_terraform_runs_total{{kind=\"{kind}\",outcome=\"succeeded\"}} 1");
        assert!(metrics.contains(&line), "missing {line} in {metrics}");
    }
}

/// An operator may set only the variables a stack's `inputs.yaml` allows: no binary, argument or path, and the
/// `local` stack only on a development control plane. Each refusal names the field and stores nothing.
#[tokio::test(flavor = "multi_thread")]
async fn operators_cannot_choose_terraform_binaries_arguments_or_paths() {
    let (stack, region_id) = provisioning_stack().await;
    let attempts = [
        ("cluster_bin", json!("/bin/sh")),
        ("cluster_args", json!(["--run-image", "ghcr.io/x=/bin/sh"])),
        ("kubeconfig_path", json!("/root/.kube/config")),
        ("state_dir", json!("/etc")),
        ("detach", json!(false)),
        ("node_count", json!(1000)),
        ("node_count", json!("2; rm -rf /")),
    ];
    for (name, value) in &attempts {
        let (status, body) = stack
            .api
            .call(
                Method::POST,
                "/clusters",
                Some(&json!({"region_id": region_id, "name": "escalate",
                             "provision": {"variables": {*name: value}}})),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {body}");
        assert_eq!(
            body["error"]["details"][0]["field"],
            format!("provision.variables.{name}"),
            "{body}"
        );
    }
    let clusters = stack.api.get("/clusters").await.unwrap();
    assert!(
        !clusters.to_string().contains("escalate"),
        "a refused request stored a cluster: {clusters}"
    );

    // Replacing the variables of an existing cluster goes through the same rules, and keeps the old ones.
    let created = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region_id, "name": "prov-vars",
                    "provision": {"variables": {"node_count": 2}}, "plan_only": true}),
        )
        .await
        .unwrap();
    let cluster_id = field(&created, "id").unwrap();
    stack
        .wait_task(&field(&created["task"], "id").unwrap(), PROVISION_WAIT)
        .await
        .unwrap();
    let (status, body) = stack
        .api
        .call(
            Method::POST,
            &format!("/clusters/{cluster_id}/provision"),
            Some(&json!({"variables": {"cluster_args": ["--run-image", "x=/bin/sh"]}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"],
        "variables.cluster_args"
    );
    let spec = stack
        .postgres_query(&format!(
            "SELECT provision_spec::text FROM clusters WHERE id = '{cluster_id}'"
        ))
        .unwrap();
    assert!(
        spec.contains("\"node_count\": 2") && !spec.contains("run-image"),
        "{spec}"
    );
    let tasks = stack
        .postgres_query(&format!(
            "SELECT count(*) FROM tasks WHERE cluster_id = '{cluster_id}'"
        ))
        .unwrap();
    assert_eq!(tasks.trim(), "1", "only the plan was queued");

    // A control plane that does not allow development stacks does not offer `local`, to any region.
    let overrides = json!({"allow_development_stacks": false});
    let (production, region_id) =
        provisioning_stack_with(overrides.as_object().unwrap().clone()).await;
    let (status, body) = production
        .api
        .call(
            Method::POST,
            "/clusters",
            Some(&json!({"region_id": region_id, "name": "dev-only", "provision": {"stack": "local"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "provision.stack");
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("allow_development_stacks"),
        "{body}"
    );
}

/// The control plane's own task lines (a Terraform run) wait in PostgreSQL while ClickHouse refuses them and
/// all arrive once it is back: none lost, none doubled.
#[tokio::test(flavor = "multi_thread")]
async fn control_plane_task_lines_wait_out_a_clickhouse_outage() {
    let (stack, region_id) = provisioning_stack().await;
    stack
        .clickhouse_query("RENAME TABLE {db}.task_logs TO {db}.task_logs_offline")
        .unwrap();
    let created = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region_id, "name": "outage", "provision": {}, "plan_only": true}),
        )
        .await
        .unwrap();
    let task_id = field(&created["task"], "id").unwrap();
    let planned = stack.wait_task(&task_id, PROVISION_WAIT).await.unwrap();
    assert_eq!(planned["state"], "succeeded", "{planned}");
    let waiting: usize = stack
        .postgres_query(&format!(
            "SELECT count(*) FROM task_log_outbox WHERE line->>'task_id' = '{task_id}'"
        ))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        waiting >= 5,
        "the plan's lines wait in the outbox: {waiting}"
    );

    stack
        .clickhouse_query("RENAME TABLE {db}.task_logs_offline TO {db}.task_logs")
        .unwrap();
    wait_outbox_empty(&stack).await;
    let stored = stack
        .clickhouse_query(&format!(
            "SELECT count() FROM {{db}}.task_logs WHERE task_id = '{task_id}' FORMAT TSV"
        ))
        .unwrap();
    assert_eq!(stored.trim(), waiting.to_string(), "every line, once");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_apply_is_reported_and_a_retry_with_fixed_input_succeeds() {
    let (stack, region_id) = provisioning_stack().await;
    let created = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region_id, "name": "prov-bad",
                    "provision": {"variables": {"start_timeout_seconds": 1}}}),
        )
        .await
        .unwrap();
    let cluster_id = field(&created, "id").unwrap();
    let task_id = field(&created["task"], "id").unwrap();
    let failed = stack.wait_task(&task_id, PROVISION_WAIT).await.unwrap();
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("terraform apply failed"),
        "{failed}"
    );
    let cluster = stack
        .api
        .get(&format!("/clusters/{cluster_id}"))
        .await
        .unwrap();
    assert_eq!(cluster["status"], "failed", "{cluster}");
    // The control plane's lines reach ClickHouse through the outbox, shortly after the task ends.
    let query =
        format!("SELECT message FROM {{db}}.task_logs WHERE task_id = '{task_id}' FORMAT TSV");
    harness::wait_until(
        "Terraform's error in the task log",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            stack
                .clickhouse_query(&query)
                .is_ok_and(|rows| rows.contains("Error"))
        },
    )
    .await
    .unwrap();

    // Two retries queued at once run one after the other, never together, on the fixed input.
    let fixed = json!({"variables": {}, "idempotency_key": "retry-1"});
    let first = stack
        .api
        .post(&format!("/clusters/{cluster_id}/provision"), &fixed)
        .await
        .unwrap();
    let second = stack
        .api
        .post(
            &format!("/clusters/{cluster_id}/provision"),
            &json!({"idempotency_key": "retry-2"}),
        )
        .await
        .unwrap();
    let first = stack
        .wait_task(&field(&first, "id").unwrap(), PROVISION_WAIT)
        .await
        .unwrap();
    let second = stack
        .wait_task(&field(&second, "id").unwrap(), PROVISION_WAIT)
        .await
        .unwrap();
    assert_eq!(
        (first["state"].as_str(), second["state"].as_str()),
        (Some("succeeded"), Some("succeeded"))
    );
    assert!(
        second["started_at"].as_str().unwrap() >= first["finished_at"].as_str().unwrap(),
        "runs on one cluster must not overlap: {first} {second}"
    );
    let second_plan = &second["output"]["plan"]["text"];
    assert_eq!(
        second_plan, "0 to add, 0 to change, 0 to destroy",
        "state stayed consistent: {second}"
    );
    stack
        .wait_agent_connected(&cluster_id, Duration::from_secs(30))
        .await
        .unwrap();

    let destroyed = stack
        .destroy_cluster(&cluster_id, PROVISION_WAIT)
        .await
        .unwrap();
    assert_eq!(destroyed["state"], "succeeded", "{destroyed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_running_apply_stops_terraform() {
    // A cluster that never comes up keeps the apply busy until it is cancelled; only the configuration may
    // name the binary.
    let scripts = tempfile::tempdir().unwrap();
    let hanging = scripts.path().join("hanging-cluster.sh");
    std::fs::write(&hanging, "#!/bin/sh\nexec sleep 120\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hanging)
        .status()
        .unwrap();
    let overrides = json!({"stack_defaults": {"local": {"cluster_bin": hanging}}});
    let (stack, region_id) = provisioning_stack_with(overrides.as_object().unwrap().clone()).await;
    let created = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region_id, "name": "prov-slow",
                    "provision": {"variables": {"start_timeout_seconds": 240}}}),
        )
        .await
        .unwrap();
    let task_id = field(&created["task"], "id").unwrap();
    harness::wait_until(
        "terraform apply running",
        PROVISION_WAIT,
        Duration::from_millis(200),
        || async {
            stack
                .clickhouse_query(&format!(
                    "SELECT message FROM {{db}}.task_logs WHERE task_id = '{task_id}' FORMAT TSV"
                ))
                .is_ok_and(|rows| rows.contains("Creating..."))
        },
    )
    .await
    .unwrap();
    let cancelled = stack
        .api
        .post(&format!("/tasks/{task_id}/cancel"), &json!({}))
        .await
        .unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let work_dir = stack.dir.join("terraform-work");
    let stopped = harness::wait_until(
        "terraform to stop",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async { !terraform_running_in(&work_dir) },
    )
    .await;
    assert!(stopped.is_ok(), "terraform kept running after the cancel");
    let query =
        format!("SELECT message FROM {{db}}.task_logs WHERE task_id = '{task_id}' FORMAT TSV");
    harness::wait_until(
        "the cancellation in the task log",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            stack
                .clickhouse_query(&query)
                .ok()
                .filter(|rows| rows.contains("terraform apply was cancelled"))
        },
    )
    .await
    .unwrap();
    let task = stack.api.get(&format!("/tasks/{task_id}")).await.unwrap();
    assert_eq!(task["state"], "cancelled", "{task}");
}

/// Waits until every control-plane task log line has left the PostgreSQL outbox for ClickHouse.
async fn wait_outbox_empty(stack: &Stack) {
    harness::wait_until(
        "the task log outbox to empty",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            stack
                .postgres_query("SELECT count(*) FROM task_log_outbox")
                .is_ok_and(|count| count.trim() == "0")
        },
    )
    .await
    .unwrap();
}

/// Whether a `terraform` process works in `dir` (other tests run Terraform at the same time elsewhere).
fn terraform_running_in(dir: &std::path::Path) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            comm.trim() == "terraform"
                && std::fs::read_link(entry.path().join("cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(dir))
        })
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_credentials_reach_terraform_only_through_its_environment() {
    let (stack, _) = provisioning_stack().await;
    let secret_key = "TC-SECRET-8f1c2e7a9b3d4c5e";
    let cloud = stack
        .api
        .post(
            "/clouds",
            &json!({"name": "tc", "provider": "tencentcloud",
                    "credentials": {"secret_id": "AKID-e2e-example", "secret_key": secret_key}}),
        )
        .await
        .unwrap();
    let region = stack
        .api
        .post(
            "/regions",
            &json!({"cloud_account_id": cloud["id"], "code": "ap-shanghai"}),
        )
        .await
        .unwrap();
    // The local stack stands in for TKE (no provider download here); the credentials flow is the same.
    let work_dir = stack.dir.join("terraform-work");
    let sampler_dir = work_dir.clone();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while stop_rx.try_recv().is_err() {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                let in_dir = std::fs::read_link(entry.path().join("cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(&sampler_dir));
                if comm.trim() == "terraform" && in_dir {
                    let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                    let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
                    seen.push((
                        String::from_utf8_lossy(&cmdline).to_string(),
                        String::from_utf8_lossy(&environ).to_string(),
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    });
    let created = stack
        .api
        .post(
            "/clusters",
            &json!({"region_id": region["id"], "name": "tc-local", "provision": {"stack": "local"}}),
        )
        .await
        .unwrap();
    let cluster_id = field(&created, "id").unwrap();
    let applied = stack
        .wait_task(&field(&created["task"], "id").unwrap(), PROVISION_WAIT)
        .await
        .unwrap();
    assert_eq!(applied["state"], "succeeded", "{applied}");
    stop_tx.send(()).unwrap();
    let seen = sampler.join().unwrap();
    assert!(!seen.is_empty(), "no terraform process was observed");
    assert!(
        seen.iter()
            .any(|(_, env)| env.contains(&format!("TENCENTCLOUD_SECRET_KEY={secret_key}"))),
        "the credential must reach Terraform through its environment"
    );
    assert!(
        seen.iter()
            .all(|(cmdline, _)| !cmdline.contains(secret_key)),
        "credential in a command line"
    );

    // Every line of the run is in ClickHouse before it is searched.
    wait_outbox_empty(&stack).await;
    let logs = stack
        .clickhouse_query("SELECT message, fields FROM {db}.task_logs FORMAT TSV")
        .unwrap();
    assert!(logs.contains("terraform_apply succeeded"), "{logs}");
    assert!(
        !logs.contains(secret_key),
        "credential in ClickHouse task logs"
    );
    assert!(
        !stack.control_plane.log_text().contains(secret_key),
        "credential in the control plane's log"
    );
    for file in walk(&work_dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret_key.len())
                .any(|w| w == secret_key.as_bytes()),
            "credential in {}",
            file.display()
        );
    }
    let destroyed = stack
        .destroy_cluster(&cluster_id, PROVISION_WAIT)
        .await
        .unwrap();
    assert_eq!(destroyed["state"], "succeeded", "{destroyed}");
}
