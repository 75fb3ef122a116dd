//! Conformance of the emulator against the real `kubectl` (a client nobody here wrote): get, server-side apply
//! (re-apply, dropped fields, conflicts, force), wait, logs -f, get --watch, label selectors, namespace
//! deletion; and the binary's flags and address reporting.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use kube_emulator::{Config, Emulator, Settings};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Runs kubectl against one kubeconfig, with a private discovery cache.
struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn new(dir: &Path) -> Self {
        Self {
            kubeconfig: dir.join("kubeconfig"),
            cache: dir.join("cache"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .spawn()
            .expect("kubectl must be on PATH for these conformance tests");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap()
    }

    /// Runs and asserts success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None).await
    }

    async fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "kubectl {args:?} failed: {stderr}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs and asserts failure; returns stderr.
    async fn fails_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin).await;
        assert!(
            !output.status.success(),
            "kubectl {args:?} should have failed"
        );
        String::from_utf8(output.stderr).unwrap()
    }

    /// Starts a long-running kubectl (logs -f, get --watch) and returns its stdout lines.
    fn stream(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kubectl must be on PATH for these conformance tests");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    }
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("kubectl printed nothing for 10 s")
        .unwrap()
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n";

fn deployment_manifest(labels: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {{{labels}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
"
    )
}

const SCALE_BY_OTHER: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec: {replicas: 3}
";

fn configmap(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: demo, labels: {{app: {app}}}}}\ndata: {{k: v}}\n"
    )
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: talker, namespace: demo}
spec: {containers: [{name: main, image: busybox}]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_conformance_over_https_with_token() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path());
    let emulator = Emulator::start(Config {
        kubeconfig_path: Some(kubectl.kubeconfig.clone()),
        cluster: Settings {
            nodes: 2,
            ..Config::default().cluster
        },
        ..Config::default()
    })
    .await
    .unwrap();
    assert!(emulator.url().starts_with("https://127.0.0.1:"));
    let kubeconfig = std::fs::read_to_string(&kubectl.kubeconfig).unwrap();
    assert!(kubeconfig.contains("certificate-authority-data") && kubeconfig.contains("token"));

    // get
    let nodes = kubectl.ok(&["get", "nodes", "-o", "name"]).await;
    assert_eq!(nodes.lines().count(), 2, "{nodes}");

    // apply --server-side, twice: the second apply changes nothing
    let manifest = format!(
        "{NAMESPACE}---\n{}",
        deployment_manifest("app: web, team: a")
    );
    let out = kubectl
        .ok_with(&["apply", "--server-side", "-f", "-"], Some(&manifest))
        .await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );

    // wait for the controller to make it Available
    let waited = kubectl
        .ok(&[
            "wait",
            "-n",
            "demo",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=20s",
        ])
        .await;
    assert!(waited.contains("condition met"), "{waited}");

    let version = [
        "get",
        "-n",
        "demo",
        "deployment/web",
        "-o",
        "jsonpath={.metadata.resourceVersion}/{.metadata.generation}",
    ];
    let before = kubectl.ok(&version).await;
    kubectl
        .ok_with(&["apply", "--server-side", "-f", "-"], Some(&manifest))
        .await;
    assert_eq!(
        kubectl.ok(&version).await,
        before,
        "re-applying the same manifest is a no-op"
    );

    // a manifest that drops a label removes it
    kubectl
        .ok_with(
            &["apply", "--server-side", "-f", "-"],
            Some(&deployment_manifest("app: web")),
        )
        .await;
    let labels = kubectl
        .ok(&[
            "get",
            "-n",
            "demo",
            "deployment/web",
            "-o",
            "jsonpath={.metadata.labels}",
        ])
        .await;
    let labels: Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels, serde_json::json!({"app": "web"}));

    // a second field manager conflicts on replicas, then takes it over with --force-conflicts
    let apply_other = ["apply", "--server-side", "--field-manager=other", "-f", "-"];
    let stderr = kubectl.fails_with(&apply_other, Some(SCALE_BY_OTHER)).await;
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{stderr}"
    );
    let replicas = [
        "get",
        "-n",
        "demo",
        "deployment/web",
        "-o",
        "jsonpath={.spec.replicas}",
    ];
    assert_eq!(kubectl.ok(&replicas).await, "1");
    let forced = [&apply_other[..], &["--force-conflicts"]].concat();
    kubectl.ok_with(&forced, Some(SCALE_BY_OTHER)).await;
    assert_eq!(kubectl.ok(&replicas).await, "3");
    let object = kubectl
        .ok(&[
            "get",
            "-n",
            "demo",
            "deployment/web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    let object: Value = serde_json::from_str(&object).unwrap();
    let owner_of_replicas: Vec<&str> = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["fieldsV1"]["f:spec"]["f:replicas"].is_null())
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owner_of_replicas, ["other"]);

    // get --watch sees objects arrive and go
    let (mut watcher, mut watch_lines) = kubectl.stream(&[
        "get",
        "configmaps",
        "-n",
        "demo",
        "--watch",
        "--output-watch-events",
        "--no-headers",
    ]);
    // label selectors with set-based requirements
    for (name, app) in [("a1", "a"), ("b1", "b"), ("c1", "c")] {
        kubectl
            .ok_with(
                &["apply", "--server-side", "-f", "-"],
                Some(&configmap(name, app)),
            )
            .await;
    }
    let selected = kubectl
        .ok(&[
            "get",
            "configmaps",
            "-n",
            "demo",
            "-l",
            "app in (a,b)",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(
        selected.lines().collect::<Vec<_>>(),
        ["configmap/a1", "configmap/b1"]
    );
    let not_selected = kubectl
        .ok(&[
            "get",
            "configmaps",
            "-n",
            "demo",
            "-l",
            "app notin (a,b)",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(not_selected.trim(), "configmap/c1");
    kubectl
        .ok(&["delete", "configmap", "-n", "demo", "a1"])
        .await;
    let mut events = Vec::new();
    while events.len() < 4 {
        let line = next_line(&mut watch_lines)
            .await
            .expect("watch still running");
        let words: Vec<&str> = line.split_whitespace().collect();
        events.push(format!("{} {}", words[0], words[1]));
    }
    assert_eq!(events, ["ADDED a1", "ADDED b1", "ADDED c1", "DELETED a1"]);
    watcher.kill().await.unwrap();

    // logs -f receives lines appended through the test hook, and ends with the pod
    kubectl
        .ok_with(&["apply", "--server-side", "-f", "-"], Some(POD))
        .await;
    kubectl
        .ok(&[
            "wait",
            "-n",
            "demo",
            "--for=condition=Ready",
            "pod/talker",
            "--timeout=20s",
        ])
        .await;
    emulator
        .append_log("demo", "talker", None, "first line")
        .unwrap();
    let (mut follower, mut log_lines) = kubectl.stream(&["logs", "-f", "-n", "demo", "talker"]);
    assert_eq!(
        next_line(&mut log_lines).await.as_deref(),
        Some("first line")
    );
    emulator
        .append_log("demo", "talker", Some("main"), "second line\nthird line")
        .unwrap();
    assert_eq!(
        next_line(&mut log_lines).await.as_deref(),
        Some("second line")
    );
    assert_eq!(
        next_line(&mut log_lines).await.as_deref(),
        Some("third line")
    );
    kubectl.ok(&["delete", "pod", "-n", "demo", "talker"]).await;
    assert_eq!(
        next_line(&mut log_lines).await,
        None,
        "logs -f ends when the pod is deleted"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), follower.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());

    // delete namespace waits until it and its content are gone
    let deleted = kubectl.ok(&["delete", "namespace", "demo"]).await;
    assert!(deleted.contains("namespace \"demo\" deleted"), "{deleted}");
    let stderr = kubectl
        .fails_with(&["get", "namespace", "demo"], None)
        .await;
    assert!(stderr.contains("namespaces \"demo\" not found"), "{stderr}");
    let left = kubectl
        .ok(&["get", "deployments,configmaps", "-A", "-o", "name"])
        .await;
    assert!(left.trim().is_empty(), "namespace content survived: {left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_address_and_serves_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(dir.path());
    let port_file = dir.path().join("url");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "3",
            "--ready-delay-ms",
            "50",
        ])
        .arg("--kubeconfig")
        .arg(&kubectl.kubeconfig)
        .arg("--port-file")
        .arg(&port_file)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first.strip_prefix("listening on ").expect("address line");
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    assert_eq!(std::fs::read_to_string(&port_file).unwrap(), url);

    let nodes = kubectl.ok(&["get", "nodes", "-o", "name"]).await;
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    let version = kubectl.ok(&["version", "-o", "json"]).await;
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.32.0");
    child.kill().await.unwrap();
}
