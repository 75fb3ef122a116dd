//! The Helm charts in deploy/charts/, with Helm built from its Go module (scripts/build-helm.sh): both lint
//! clean; the agent chart renders the same objects as the install manifest the API returns, installs into a real
//! API server and its agent connects (with the token as a value, and from a Secret of the operator's); the
//! control-plane chart's objects are accepted by a real API server under the `restricted` Pod Security level and
//! its configuration by the control plane's own loader; bad values are refused naming the value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, bail};
use e2e::{Stack, StackOptions};
use harness::KubeCluster;
use serde::Deserialize;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const AGENT_CHART: &str = "deploy/charts/edgefleet-agent";
const CONTROL_PLANE_CHART: &str = "deploy/charts/edgefleet-control-plane";
/// Set by scripts/test.sh from scripts/build-helm.sh, as EDGEFLEET_KUBE_BIN_DIR is from build-kube.sh.
const HELM_BIN_DIR_ENV: &str = "EDGEFLEET_HELM_BIN_DIR";

/// The `helm` binary, run with the charts' paths relative to the repository.
struct Helm {
    bin: PathBuf,
}

impl Helm {
    /// From EDGEFLEET_HELM_BIN_DIR, or by running scripts/build-helm.sh (which builds it once per machine).
    fn locate() -> anyhow::Result<Self> {
        let dir = match std::env::var_os(HELM_BIN_DIR_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let script = harness::workspace_root().join("scripts/build-helm.sh");
                let output = Command::new("bash")
                    .arg(&script)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .with_context(|| format!("running {}", script.display()))?;
                if !output.status.success() {
                    bail!("{} failed: {}", script.display(), output.status);
                }
                PathBuf::from(String::from_utf8(output.stdout)?.trim())
            }
        };
        let bin = dir.join("helm");
        if !bin.is_file() {
            bail!("no helm in {} ({HELM_BIN_DIR_ENV})", dir.display());
        }
        Ok(Self { bin })
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(harness::workspace_root())
            .output()
            .expect("helm runs")
    }

    /// Stdout of a command that must succeed.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.output(args);
        if !output.status.success() {
            bail!(
                "helm {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// `helm template` of `chart` with a values file; fails with Helm's message.
    fn template(&self, chart: &str, values: &Path, extra: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["template", "edgefleet", chart, "-f", path_str(values)];
        args.extend(extra);
        self.run(&args)
    }

    /// `helm lint --strict` must pass with neither warnings nor errors.
    fn assert_lints_clean(&self, chart: &str, values: &Path) {
        let output = self.output(&["lint", "--strict", chart, "-f", path_str(values)]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "helm lint {chart}: {text}");
        assert!(
            text.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{text}"
        );
        for finding in ["[WARNING]", "[ERROR]", "level=WARN"] {
            assert!(!text.contains(finding), "helm lint {chart}: {text}");
        }
    }

    /// Helm's error for values that must be refused.
    fn refusal(&self, chart: &str, values: &Path) -> String {
        let output = self.output(&["template", "edgefleet", chart, "-f", path_str(values)]);
        assert!(
            !output.status.success(),
            "{chart} accepted {}",
            std::fs::read_to_string(values).unwrap()
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Writes values as JSON, which Helm reads as YAML.
fn values_file(dir: &Path, name: &str, values: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(values).unwrap()).unwrap();
    path
}

/// The objects of a multi-document YAML stream, keyed `Kind namespace/name` (no namespace for cluster-scoped).
fn objects(yaml: &str) -> BTreeMap<String, Value> {
    let mut objects = BTreeMap::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let object = Value::deserialize(document).expect("valid YAML");
        if object.is_null() {
            continue;
        }
        let key = format!(
            "{} {}/{}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        assert!(objects.insert(key.clone(), object).is_none(), "{key} twice");
    }
    objects
}

/// Where two values differ, as `path: left != right` lines.
fn differences(path: &str, left: &Value, right: &Value, out: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            for key in l.keys().chain(r.keys()).collect::<BTreeSet<_>>() {
                let (l, r) = (&l.get(key), &r.get(key));
                let (l, r) = (l.unwrap_or(&Value::Null), r.unwrap_or(&Value::Null));
                differences(&format!("{path}.{key}"), l, r, out);
            }
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            for (index, (l, r)) in l.iter().zip(r).enumerate() {
                differences(&format!("{path}[{index}]"), l, r, out);
            }
        }
        _ if left != right => out.push(format!("{path}: {left} != {right}")),
        _ => {}
    }
}

/// Every object of the chart equals the API's object of the same kind, namespace and name; a failure lists each
/// differing field of every differing object, then the objects themselves.
fn assert_same_objects(chart: &BTreeMap<String, Value>, api: &BTreeMap<String, Value>) {
    let (chart_keys, api_keys): (BTreeSet<_>, BTreeSet<_>) =
        (chart.keys().collect(), api.keys().collect());
    assert_eq!(
        chart_keys, api_keys,
        "the chart (left) and the API's manifest (right) render different objects"
    );
    let mut report = Vec::new();
    for (key, api_object) in api {
        let mut found = Vec::new();
        differences("", &chart[key], api_object, &mut found);
        if !found.is_empty() {
            report.push(format!(
                "{key} differs (chart != API):\n{}\nchart: {:#}\nAPI: {:#}",
                found.join("\n"),
                chart[key],
                api_object
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n\n"));
}

fn kube_json(kubeconfig: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&e2e::kubectl(kubeconfig, &all, None).unwrap()).unwrap()
}

/// Runs an apply task in the cluster and checks it succeeded: the agent acts with the chart's RBAC.
async fn assert_agent_applies(stack: &Stack, cluster_id: &str, namespace: &str) {
    let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n");
    let task = stack
        .run_task(
            cluster_id,
            &json!({"kind": "apply", "manifest": manifest, "wait_timeout_seconds": 60}),
        )
        .await
        .unwrap();
    assert_eq!(task["state"], "succeeded", "{task}");
    stack.kubectl(&["get", "namespace", namespace]).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_chart_renders_the_install_manifest_and_its_agent_connects() {
    let helm = Helm::locate().unwrap();
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let kubeconfig = path_str(&stack.kubeconfig).to_owned();
    let cluster = stack.register_cluster("charted").await.unwrap();
    let bundle = stack.bootstrap_token(&cluster.cluster_id).await.unwrap();
    // What an operator copies from the bundle. The image is the chart's default, which must be the control
    // plane's default agent image (both follow the release's version).
    let values = values_file(
        &stack.dir,
        "agent-values.json",
        &json!({
            "controlPlane": {"endpoint": bundle["install"]["agent_endpoint"], "caPem": bundle["install"]["ca_pem"]},
            "bootstrapToken": {"value": bundle["token"]},
        }),
    );
    helm.assert_lints_clean(AGENT_CHART, &values);
    let rendered = helm.template(AGENT_CHART, &values, &[]).unwrap();
    let api_objects = objects(bundle["install"]["manifest"].as_str().unwrap());
    assert_eq!(api_objects.len(), 11, "{api_objects:?}");
    assert_same_objects(&objects(&rendered), &api_objects);

    // Installed as the chart's README says: the release record in another namespace than edgefleet-system,
    // which the chart creates and deletes. Helm 4 applies server-side.
    helm.run(&[
        "install",
        "edgefleet-agent",
        AGENT_CHART,
        "--namespace",
        "default",
        "--kubeconfig",
        &kubeconfig,
        "-f",
        path_str(&values),
    ])
    .unwrap();
    let deployment = kube_json(
        &stack.kubeconfig,
        &[
            "get",
            "deployment",
            "edgefleet-agent",
            "-n",
            "edgefleet-system",
        ],
    );
    assert!(
        deployment["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["manager"] == "helm" && entry["operation"] == "Apply"),
        "applied server-side by helm: {}",
        deployment["metadata"]["managedFields"]
    );
    // The pod comes up through the real scheduler and the node simulator, which runs the agent's image as a
    // local process with the pod's service-account token (tests/README.md).
    stack
        .wait_agent_connected(&cluster.cluster_id, WAIT)
        .await
        .unwrap();
    assert_agent_applies(&stack, &cluster.cluster_id, "from-the-chart").await;

    // Uninstalling removes every object, edgefleet-system with the agent's identity included.
    helm.run(&[
        "uninstall",
        "edgefleet-agent",
        "--namespace",
        "default",
        "--kubeconfig",
        &kubeconfig,
        "--wait",
    ])
    .unwrap();
    let left = stack
        .kubectl(&[
            "get",
            "namespace,clusterrole,clusterrolebinding,validatingadmissionpolicy",
            "-l",
            "app.kubernetes.io/name=edgefleet-agent",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(left, "", "left after uninstall");

    // The token from a Secret the operator made: the namespace and the Secret exist first, so the release
    // takes the namespace over.
    let second = stack.register_cluster("charted-secret").await.unwrap();
    let bundle = stack.bootstrap_token(&second.cluster_id).await.unwrap();
    stack
        .kubectl(&["create", "namespace", "edgefleet-system"])
        .unwrap();
    stack
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "agent-token",
            "-n",
            "edgefleet-system",
            &format!(
                "--from-literal=bootstrap={}",
                bundle["token"].as_str().unwrap()
            ),
        ])
        .unwrap();
    let values = values_file(
        &stack.dir,
        "agent-values-secret.json",
        &json!({
            "controlPlane": {"endpoint": bundle["install"]["agent_endpoint"], "caPem": bundle["install"]["ca_pem"]},
            "bootstrapToken": {"existingSecret": "agent-token", "existingSecretKey": "bootstrap"},
        }),
    );
    helm.assert_lints_clean(AGENT_CHART, &values);
    helm.run(&[
        "install",
        "edgefleet-agent",
        AGENT_CHART,
        "--namespace",
        "default",
        "--kubeconfig",
        &kubeconfig,
        "--take-ownership",
        "-f",
        path_str(&values),
    ])
    .unwrap();
    let stored = kube_json(
        &stack.kubeconfig,
        &[
            "get",
            "secret",
            "edgefleet-agent-bootstrap",
            "-n",
            "edgefleet-system",
        ],
    );
    assert!(
        stored["data"]["token"].is_null(),
        "the token stays in the operator's Secret: {stored}"
    );
    stack
        .wait_agent_connected(&second.cluster_id, WAIT)
        .await
        .unwrap();
    assert_agent_applies(&stack, &second.cluster_id, "from-the-chart-with-a-secret").await;
}

/// `kubectl apply --server-side --dry-run=server` (`?dryRun=All`): the API server validates and admits the
/// objects without storing them. Returns stderr, where the API server's warnings go.
fn apply_dry_run(kubeconfig: &Path, manifest: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args([
            "--kubeconfig",
            path_str(kubeconfig),
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "the API server refused the chart: {stderr}\n{manifest}"
    );
    stderr
}

/// The rendered Deployment's container, the ConfigMap's control-plane.yaml and the chart's Secret (if any).
struct ControlPlaneObjects {
    container: Value,
    config: String,
    secret: Option<Value>,
}

fn control_plane_objects(rendered: &BTreeMap<String, Value>) -> ControlPlaneObjects {
    let find = |kind: &str| {
        rendered
            .values()
            .find(|object| object["kind"] == kind)
            .cloned()
    };
    let deployment = find("Deployment").expect("a Deployment");
    ControlPlaneObjects {
        container: deployment["spec"]["template"]["spec"]["containers"][0].clone(),
        config: find("ConfigMap").expect("a ConfigMap")["data"]["control-plane.yaml"]
            .as_str()
            .unwrap()
            .to_owned(),
        secret: find("Secret"),
    }
}

/// Runs the control plane's own `check-config` on the rendered configuration, with the environment the
/// Deployment gives it (each variable's value read from the chart's Secret), after checking that the files it
/// names are where the Deployment mounts them.
fn assert_control_plane_accepts(rendered: &ControlPlaneObjects, dir: &Path) {
    let secret = rendered.secret.as_ref().expect("the chart's own Secret");
    let args: Vec<&str> = rendered.container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mount_of = |volume: &str| {
        rendered.container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|mount| mount["name"] == volume)
            .and_then(|mount| mount["mountPath"].as_str())
            .unwrap_or_else(|| panic!("no mount of {volume}"))
            .to_owned()
    };
    assert_eq!(
        args,
        [
            "serve",
            "--config",
            &format!("{}/control-plane.yaml", mount_of("config"))
        ]
    );
    let config: Value = serde_yaml::from_str(&rendered.config).unwrap();
    // The task-signing key comes as text from the Secret: a mounted file would be root's, or group-readable with
    // fsGroup, and the control plane refuses a key file others can read.
    assert!(config.get("task_signing").is_none(), "{config:?}");
    let key_variable = rendered.container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|variable| variable["name"] == "EDGEFLEET_CP_TASK_SIGNING__KEY")
        .expect("the task-signing key is passed in the environment");
    assert_eq!(
        key_variable["valueFrom"]["secretKeyRef"]["key"],
        "task-signing-key"
    );

    let config_path = dir.join("rendered-control-plane.yaml");
    std::fs::write(&config_path, &rendered.config).unwrap();
    let mut command = Command::new(harness::workspace_bin("control-plane").unwrap());
    command
        .args(["check-config", "--config", path_str(&config_path)])
        .env_clear();
    for variable in rendered.container["env"].as_array().unwrap() {
        let key = variable["valueFrom"]["secretKeyRef"]["key"]
            .as_str()
            .unwrap();
        let value = secret["stringData"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} not in the Secret"));
        command.env(variable["name"].as_str().unwrap(), value);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("configuration is valid"),
        "{text}\n{}",
        rendered.config
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn control_plane_chart_is_accepted_by_the_api_server_and_the_control_plane() {
    let helm = Helm::locate().unwrap();
    let cluster = KubeCluster::start("kube-cluster", &[]).await.unwrap();
    let dir = harness::test_dir();
    // `warn`, not `enforce`: a Deployment's pod template is only ever warned about, and the warning is what the
    // test reads.
    e2e::kubectl(
        cluster.kubeconfig(),
        &["create", "namespace", "edgefleet"],
        None,
    )
    .unwrap();
    e2e::kubectl(
        cluster.kubeconfig(),
        &[
            "label",
            "namespace",
            "edgefleet",
            "pod-security.kubernetes.io/warn=restricted",
        ],
        None,
    )
    .unwrap();
    let secrets = json!({
        "databaseUrl": "postgres://edgefleet:pw@db.example.com/edgefleet",
        "clickhouseUrl": "http://clickhouse.example.com:8123",
        "clickhousePassword": "ch-password",
        "encryptionKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "taskSigningKey": agent_protocol::signing::SigningKey::generate_pem(),
        "adminToken": "efa_chart-admin-token",
    });
    let defaults = values_file(
        &dir,
        "defaults.json",
        &json!({"config": {"agent_endpoint": "https://agents.example.com:8443"}, "secrets": secrets}),
    );
    let scaled = values_file(
        &dir,
        "scaled.json",
        &json!({
            "replicas": 3,
            "config": {"agent_endpoint": "https://agents.example.com:8443", "tasks": {"lease_seconds": 45}},
            "secrets": secrets,
            "service": {"agent": {"type": "LoadBalancer"}},
            "ingress": {"enabled": true, "className": "nginx", "host": "edgefleet.example.com", "tlsSecretName": "edgefleet-tls",
                        "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}},
        }),
    );
    let existing = values_file(
        &dir,
        "existing-secret.json",
        &json!({
            "config": {"agent_endpoint": "https://agents.example.com:8443",
                       "provisioning": {"state": {"bucket": "tf-state", "region": "eu-west-1"}}},
            "existingSecret": "edgefleet-secrets",
        }),
    );
    helm.assert_lints_clean(CONTROL_PLANE_CHART, &defaults);
    let render = |values: &Path| {
        let text = helm
            .template(CONTROL_PLANE_CHART, values, &["--namespace", "edgefleet"])
            .unwrap();
        let warnings = apply_dry_run(cluster.kubeconfig(), &text);
        assert!(
            !warnings.contains("would violate PodSecurity"),
            "{}: {warnings}",
            values.display()
        );
        objects(&text)
    };
    let kinds = |objects: &BTreeMap<String, Value>| -> BTreeSet<String> {
        objects
            .values()
            .map(|o| o["kind"].as_str().unwrap().to_owned())
            .collect()
    };

    let objects = render(&defaults);
    assert_eq!(
        kinds(&objects),
        ["ConfigMap", "Deployment", "Secret", "Service"]
            .map(String::from)
            .into()
    );
    assert_control_plane_accepts(&control_plane_objects(&objects), &dir);

    let objects = render(&scaled);
    let deployment = &objects["Deployment edgefleet/edgefleet-edgefleet-control-plane"];
    assert_eq!(deployment["spec"]["replicas"], 3);
    let rule = &objects["Ingress edgefleet/edgefleet-edgefleet-control-plane"]["spec"]["rules"][0];
    assert_eq!(rule["host"], "edgefleet.example.com");
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"]["port"]["name"],
        "http"
    );
    let agent_service = &objects["Service edgefleet/edgefleet-edgefleet-control-plane-agent"];
    assert_eq!(agent_service["spec"]["type"], "LoadBalancer");
    assert_control_plane_accepts(&control_plane_objects(&objects), &dir);

    let objects = render(&existing);
    let rendered = control_plane_objects(&objects);
    assert!(
        rendered.secret.is_none(),
        "the chart makes no Secret of its own"
    );
    let referenced: BTreeSet<(&str, &str)> = rendered.container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| {
            let reference = &variable["valueFrom"]["secretKeyRef"];
            (
                reference["name"].as_str().unwrap(),
                reference["key"].as_str().unwrap(),
            )
        })
        .collect();
    let keys = [
        "database-url",
        "clickhouse-url",
        "clickhouse-password",
        "encryption-key",
        "task-signing-key",
        "admin-token",
        "s3-access-key-id",
        "s3-secret-access-key",
    ];
    assert_eq!(
        referenced,
        keys.into_iter()
            .map(|key| ("edgefleet-secrets", key))
            .collect()
    );
    let config: Value = serde_yaml::from_str(&rendered.config).unwrap();
    assert_eq!(config["provisioning"]["source_dir"], "/opt/edgefleet");
    assert_eq!(
        config["provisioning"]["work_dir"],
        "/var/lib/edgefleet/terraform"
    );
}

#[test]
fn bad_values_are_refused_naming_the_value() {
    let helm = Helm::locate().unwrap();
    let dir = harness::test_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let agent = |values: Value| (AGENT_CHART, values);
    let control_plane = |values: Value| (CONTROL_PLANE_CHART, values);
    let cp_secrets = json!({"databaseUrl": "postgres://db/edgefleet", "clickhouseUrl": "http://ch:8123",
                            "encryptionKey": "a2V5", "taskSigningKey": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"});
    let cases = [
        (
            agent(json!({"controlPlane": {"caPem": ca}, "bootstrapToken": {"value": "efb_x"}})),
            "controlPlane.endpoint is required",
        ),
        (
            agent(
                json!({"controlPlane": {"endpoint": "http://cp:8443", "caPem": ca}, "bootstrapToken": {"value": "efb_x"}}),
            ),
            "at '/controlPlane/endpoint': 'http://cp:8443' does not match",
        ),
        (
            agent(json!({"controlPlane": {"endpoint": "https://cp:8443", "caPem": ca}})),
            "bootstrapToken.value or bootstrapToken.existingSecret is required",
        ),
        (
            agent(
                json!({"controlPlane": {"endpoint": "https://cp:8443", "caPem": ca},
                         "bootstrapToken": {"value": "efb_x", "existingSecret": "agent-token"}}),
            ),
            "set only one of bootstrapToken.value and bootstrapToken.existingSecret",
        ),
        (
            agent(
                json!({"controlPlane": {"endpoint": "https://cp:8443", "caPem": ca}, "bootstrapToken": {"value": "efb_x"},
                         "log": {"format": "xml"}}),
            ),
            "at '/log/format': value must be one of '', 'text', 'json'",
        ),
        (
            agent(
                json!({"controlPlane": {"endpoint": "https://cp:8443", "caPem": ca}, "bootstrapToken": {"value": "efb_x"},
                         "otlpEndpoint": "https://collector:4318"}),
            ),
            "at '/otlpEndpoint': 'https://collector:4318' does not match",
        ),
        (
            control_plane(json!({"config": {"agent_endpoint": "https://cp:8443",
                                  "telemetry": {"otlp_endpoint": "https://collector:4318"}},
                       "secrets": cp_secrets})),
            "at '/config/telemetry/otlp_endpoint': 'https://collector:4318' does not match",
        ),
        (
            control_plane(
                json!({"replicas": "three", "config": {"agent_endpoint": "https://cp:8443"}, "secrets": cp_secrets}),
            ),
            "at '/replicas': got string, want integer",
        ),
        (
            control_plane(json!({"secrets": cp_secrets})),
            "config.agent_endpoint is required",
        ),
        (
            control_plane(json!({"config": {"agent_endpoint": "https://cp:8443"}})),
            "secrets.databaseUrl is required",
        ),
        (
            control_plane(
                json!({"config": {"agent_endpoint": "https://cp:8443", "database_url": "postgres://db/x"},
                                 "secrets": cp_secrets}),
            ),
            "config.database_url holds a secret: set secrets.databaseUrl",
        ),
        (
            control_plane(
                json!({"config": {"agent_endpoint": "https://cp:8443", "tasks": {"lease_secs": 5}},
                                 "secrets": cp_secrets}),
            ),
            "at '/config/tasks': additional properties 'lease_secs' not allowed",
        ),
        (
            control_plane(
                json!({"config": {"agent_endpoint": "https://cp:8443"}, "secrets": cp_secrets,
                                 "ingress": {"enabled": true}}),
            ),
            "ingress.host is required with ingress.enabled",
        ),
    ];
    for (index, ((chart, values), expected)) in cases.into_iter().enumerate() {
        let file = values_file(&dir, &format!("bad-{index}.json"), &values);
        let error = helm.refusal(chart, &file);
        assert!(
            error.contains(expected),
            "{chart} with {values}: expected {expected:?} in {error}"
        );
    }
    // And the log selection reaches the agent's environment when given.
    let file = values_file(
        &dir,
        "log.json",
        &json!({"controlPlane": {"endpoint": "https://cp:8443", "caPem": ca}, "bootstrapToken": {"value": "efb_x"},
                "log": {"filter": "info,node_agent::podlogs=debug", "format": "json"},
                "otlpEndpoint": "http://otel-collector.observability:4318"}),
    );
    let rendered = objects(&helm.template(AGENT_CHART, &file, &[]).unwrap());
    let container = &rendered["Deployment edgefleet-system/edgefleet-agent"]["spec"]["template"]["spec"]
        ["containers"][0];
    assert_eq!(
        container["env"],
        json!([{"name": "EDGEFLEET_LOG", "value": "info,node_agent::podlogs=debug"},
               {"name": "EDGEFLEET_LOG_FORMAT", "value": "json"}])
    );
    // And traces go where otlpEndpoint says.
    let args = container["args"].as_array().unwrap();
    assert_eq!(
        args[args.len() - 2..],
        [
            json!("--otlp-endpoint"),
            json!("http://otel-collector.observability:4318")
        ]
    );
}
