//! The process-running kubelet for run images, with `/bin/sh` standing in for a mapped binary: translated
//! arguments, Secret files, env references and the kubeconfig reach the process; its output is the pod log;
//! crashes restart with backoff; deleting pods stops processes (SIGKILL after the grace period); processes
//! die with the emulator, even when it is killed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::config::Kubeconfig;
use kube_emulator::{Config, Emulator, RunImage, Settings};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

mod common;
use common::{client_for, client_from, eventually};

const SHELL_IMAGE: &str = "example.test/tools/shell";

fn config() -> Config {
    Config {
        cluster: Settings {
            ready_delay: Duration::from_millis(50),
            restart_backoff: Duration::from_millis(100),
            run_images: vec![format!("{SHELL_IMAGE}=/bin/sh").parse().unwrap()],
            ..Config::default().cluster
        },
        ..Config::default()
    }
}

/// A pod running `script` in the mapped shell (`$$` is written `$$$$`: Kubernetes expansion halves it).
fn shell_pod(name: &str, script: &str, spec: Value) -> Pod {
    let mut pod = json!({"metadata": {"name": name}, "spec": spec});
    pod["spec"]["containers"] =
        json!([{"name": "sh", "image": format!("{SHELL_IMAGE}:1"), "args": ["-c", script]}]);
    serde_json::from_value(pod).unwrap()
}

/// Whether a process exists and is not a zombie (PID 1 of a container may never reap orphans).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
        !state.starts_with(['Z', 'X'])
    })
}

/// The container log, once it contains `marker`.
async fn log_with(pods: &Api<Pod>, name: &str, marker: &str) -> String {
    eventually(10, &format!("{marker:?} in the log of {name}"), || async {
        let log = pods.logs(name, &LogParams::default()).await.ok()?;
        log.contains(marker).then_some(log)
    })
    .await
}

/// The value after `key=` on the log line starting with it.
fn field<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line in:\n{log}"))
}

/// The pid a script printed as `pid=...`.
fn pid_in(log: &str) -> u32 {
    field(log, "pid").parse().unwrap()
}

async fn wait_dead(pid: u32) {
    eventually(10, &format!("process {pid} to end"), || async {
        (!alive(pid)).then_some(())
    })
    .await;
}

fn container_status(pod: &Pod) -> Value {
    serde_json::to_value(pod).unwrap()["status"]["containerStatuses"][0].clone()
}

#[tokio::test]
async fn deployment_process_gets_translated_args_secret_files_env_and_kubeconfig() {
    let emulator = Emulator::start(config()).await.unwrap();
    let client = client_for(&emulator, None).await;
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "creds"},
        "stringData": {"token": "s3cret", "ca.crt": "CA-PEM"}}))
    .unwrap();
    Api::<Secret>::default_namespaced(client.clone())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let settings: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"mode": "fast"}}))
            .unwrap();
    Api::<ConfigMap>::default_namespaced(client.clone())
        .create(&PostParams::default(), &settings)
        .await
        .unwrap();

    // Backquotes, not `$(...)`, for command substitution: `$(NAME)` is Kubernetes variable syntax.
    let script = r#"echo "pid=$$$$"
echo "ca-arg=$1"
echo "ca=`cat "$1"`"
echo "token=`cat "$TOKEN_FILE"`"
echo "mode-bits=`stat -L -c %a "$TOKEN_FILE"`"
echo "greeting=$GREETING"
echo "pod=$POD"
echo "kubeconfig=$KUBECONFIG"
echo "agent-kubeconfig=$EDGEFLEET_KUBECONFIG"
echo "namespaces=`kubectl --kubeconfig "$KUBECONFIG" get namespace kube-system -o name 2>&1`"
echo started
exec sleep 600"#;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {
                    "containers": [{
                        "name": "agent",
                        "image": format!("{SHELL_IMAGE}:v2"),
                        "command": ["/usr/local/bin/agent", "-c"],
                        "args": [script, "sh", "/etc/creds/ca.crt"],
                        "env": [
                            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                            {"name": "GREETING", "value": "hello-$(MODE)"},
                            {"name": "TOKEN_FILE", "value": "/etc/creds/token"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        ],
                        "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds", "readOnly": true}],
                    }],
                    "volumes": [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}],
                },
            },
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let name = eventually(10, "the deployment's pod", || async {
        let list = pods
            .list(&ListParams::default().labels("app=agent"))
            .await
            .ok()?;
        list.items.first().and_then(|p| p.metadata.name.clone())
    })
    .await;
    let log = log_with(&pods, &name, "started").await;

    let ca_arg = field(&log, "ca-arg");
    assert!(
        ca_arg.ends_with("/agent/etc/creds/ca.crt") && ca_arg != "/etc/creds/ca.crt",
        "mount path translated under the container's directory: {ca_arg}"
    );
    assert_eq!(field(&log, "ca"), "CA-PEM");
    assert_eq!(field(&log, "token"), "s3cret");
    assert_eq!(field(&log, "mode-bits"), "400", "defaultMode");
    assert_eq!(field(&log, "greeting"), "hello-fast");
    assert_eq!(field(&log, "pod"), name);
    let kubeconfig = field(&log, "kubeconfig");
    assert_eq!(field(&log, "agent-kubeconfig"), kubeconfig);
    assert_eq!(
        std::fs::read_to_string(kubeconfig).unwrap(),
        emulator.kubeconfig_yaml()
    );
    assert_eq!(
        field(&log, "namespaces"),
        "namespace/kube-system",
        "the process reaches the emulator with its kubeconfig"
    );

    let pod = eventually(10, "the pod to be ready", || async {
        let pod = pods.get(&name).await.ok()?;
        let ready = pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(pod)
    })
    .await;
    let status = container_status(&pod);
    assert!(status["state"]["running"].is_object(), "{status}");
    assert_eq!(status["restartCount"], 0);

    let pid = pid_in(&log);
    assert!(alive(pid));
    deployments
        .delete("agent", &DeleteParams::default())
        .await
        .unwrap();
    wait_dead(pid).await;
}

#[tokio::test]
async fn crashing_process_restarts_with_backoff_and_finished_pods_complete() {
    let emulator = Emulator::start(config()).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client_for(&emulator, None).await);
    let crasher = shell_pod("crasher", "echo attempt; exit 3", json!({}));
    pods.create(&PostParams::default(), &crasher).await.unwrap();
    let status = eventually(10, "two restarts", || async {
        let status = container_status(&pods.get("crasher").await.ok()?);
        (status["restartCount"].as_i64()? >= 2).then_some(status)
    })
    .await;
    let last = &status["lastState"]["terminated"];
    assert_eq!(
        (last["exitCode"].as_i64(), last["reason"].as_str()),
        (Some(3), Some("Error"))
    );
    eventually(10, "a log line per start", || async {
        let log = pods.logs("crasher", &LogParams::default()).await.ok()?;
        (log.matches("attempt").count() >= 3).then_some(())
    })
    .await;
    let ready = pods
        .get("crasher")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    let ready = ready.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");

    let once = shell_pod("once", "echo done", json!({"restartPolicy": "Never"}));
    pods.create(&PostParams::default(), &once).await.unwrap();
    let pod = eventually(10, "the pod to succeed", || async {
        let pod = pods.get("once").await.ok()?;
        (pod.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(pod)
    })
    .await;
    let status = container_status(&pod);
    assert_eq!(
        status["state"]["terminated"]["reason"], "Completed",
        "{status}"
    );
    assert_eq!(status["restartCount"], 0);

    // A missing Secret keeps the container waiting until the Secret appears.
    let mut waiting = shell_pod("waiting", "echo token=$TOKEN; exec sleep 600", json!({}));
    let env =
        json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]);
    waiting.spec.as_mut().unwrap().containers[0].env = Some(serde_json::from_value(env).unwrap());
    pods.create(&PostParams::default(), &waiting).await.unwrap();
    let status = eventually(10, "the container to wait for its Secret", || async {
        let status = container_status(&pods.get("waiting").await.ok()?);
        status["state"]["waiting"]["message"]
            .is_string()
            .then_some(status)
    })
    .await;
    assert_eq!(
        status["state"]["waiting"]["reason"],
        "CreateContainerConfigError"
    );
    assert_eq!(
        status["state"]["waiting"]["message"],
        "secret \"late\" not found"
    );
    let late: Secret =
        serde_json::from_value(json!({"metadata": {"name": "late"}, "stringData": {"token": "t"}}))
            .unwrap();
    Api::<Secret>::default_namespaced(pods.clone().into_client())
        .create(&PostParams::default(), &late)
        .await
        .unwrap();
    log_with(&pods, "waiting", "token=t").await;
}

#[tokio::test]
async fn stopping_escalates_to_sigkill_and_shutdown_waits_for_processes() {
    let emulator = Emulator::start(config()).await.unwrap();
    let client = client_for(&emulator, None).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "stubborn"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "stubborn");
    // Ignoring SIGTERM is inherited by `sleep`, so only SIGKILL ends the group.
    let script = "trap '' TERM; echo pid=$$$$; echo started; while :; do sleep 0.1; done";
    let stubborn = shell_pod(
        "stubborn",
        script,
        json!({"terminationGracePeriodSeconds": 1}),
    );
    pods.create(&PostParams::default(), &stubborn)
        .await
        .unwrap();
    let pid = pid_in(&log_with(&pods, "stubborn", "started").await);
    namespaces
        .delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(pid), "SIGTERM is ignored during the grace period");
    wait_dead(pid).await;

    let pods: Api<Pod> = Api::default_namespaced(client);
    let sleeper = shell_pod(
        "sleeper",
        "echo pid=$$$$; echo started; exec sleep 600",
        json!({}),
    );
    pods.create(&PostParams::default(), &sleeper).await.unwrap();
    let pid = pid_in(&log_with(&pods, "sleeper", "started").await);
    emulator.shutdown().await;
    assert!(!alive(pid), "shutdown returns once the processes are gone");
}

#[tokio::test]
async fn processes_die_with_a_killed_emulator_binary() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut emulator = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["--tls", "--ready-delay-ms", "50", "--run-image"])
        .arg(format!("{SHELL_IMAGE}=/bin/sh"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        // A killed emulator cannot remove its kubelet directory; keep it inside this test's directory.
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(emulator.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("listening on https://"), "{first}");
    let kubeconfig = Kubeconfig::read_from(Path::new(&kubeconfig)).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client_from(kubeconfig, None).await);
    let sleeper = shell_pod(
        "sleeper",
        "echo pid=$$$$; echo started; exec sleep 600",
        json!({}),
    );
    pods.create(&PostParams::default(), &sleeper).await.unwrap();
    let pid = pid_in(&log_with(&pods, "sleeper", "started").await);

    emulator.kill().await.unwrap();
    wait_dead(pid).await;
}

#[tokio::test]
async fn run_image_flag_and_binary_are_checked() {
    assert!("no-equals-sign".parse::<RunImage>().is_err());
    assert!("=/bin/sh".parse::<RunImage>().is_err());
    let parsed: RunImage = "ghcr.io/x/agent:=/opt/a=b".parse().unwrap();
    assert_eq!(
        (parsed.prefix.as_str(), parsed.binary.to_str()),
        ("ghcr.io/x/agent:", Some("/opt/a=b"))
    );
    let mut config = config();
    config.cluster.run_images = vec!["img=/nonexistent/agent".parse().unwrap()];
    let error = Emulator::start(config).await.err().expect("missing binary");
    assert!(
        error
            .to_string()
            .starts_with("run image img=/nonexistent/agent: "),
        "{error}"
    );
}
