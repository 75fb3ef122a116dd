//! Simulated control loops: namespace termination, default ServiceAccounts, CRD establishment, Deployments
//! (ReplicaSets per pod template, rolling replacement, status and conditions), ReplicaSets (pods), Jobs,
//! a scheduler+kubelet that makes pods Running/Ready after a delay (handing containers of run images to the
//! process-running [`Kubelet`]), load-balancer status and garbage collection.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api::{Api, Page, WriteOptions};
use crate::error::ApiError;
use crate::kubelet::{self, Kubelet, RunImage};
use crate::meta;
use crate::resources::ResourceInfo;
use crate::selectors::Filter;

/// Behaviour knobs of the simulated cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Time from a pod's creation until it is Running and Ready (or Succeeded for Job pods).
    pub ready_delay: Duration,
    /// Pods with a container image containing this text run but never become ready.
    pub never_ready_marker: String,
    /// Number of fake Nodes.
    pub nodes: usize,
    /// Images whose containers run as local processes instead of being simulated.
    pub run_images: Vec<RunImage>,
    /// Delay before restarting an exited run-image container; doubles per restart up to 30 times this.
    pub restart_backoff: Duration,
}

const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const REVISION: &str = "deployment.kubernetes.io/revision";
const TEMPLATE_HASH: &str = "pod-template-hash";

/// The built-in kinds the controllers touch (built-in kinds never change, so they are looked up once).
struct Kinds {
    namespaces: Arc<ResourceInfo>,
    nodes: Arc<ResourceInfo>,
    pods: Arc<ResourceInfo>,
    services: Arc<ResourceInfo>,
    service_accounts: Arc<ResourceInfo>,
    deployments: Arc<ResourceInfo>,
    replica_sets: Arc<ResourceInfo>,
    jobs: Arc<ResourceInfo>,
    ingresses: Arc<ResourceInfo>,
    crds: Arc<ResourceInfo>,
}

impl Kinds {
    fn new(api: &Api) -> Self {
        let find =
            |group: &str, plural: &str| api.resource(group, "v1", plural).expect("built-in kind");
        Self {
            namespaces: find("", "namespaces"),
            nodes: find("", "nodes"),
            pods: find("", "pods"),
            services: find("", "services"),
            service_accounts: find("", "serviceaccounts"),
            deployments: find("apps", "deployments"),
            replica_sets: find("apps", "replicasets"),
            jobs: find("batch", "jobs"),
            ingresses: find("networking.k8s.io", "ingresses"),
            crds: find("apiextensions.k8s.io", "customresourcedefinitions"),
        }
    }
}

fn main_write(manager: &str) -> WriteOptions<'_> {
    WriteOptions {
        manager,
        subresource: None,
        dry_run: false,
    }
}

pub(crate) fn status_write(manager: &str) -> WriteOptions<'_> {
    WriteOptions {
        manager,
        subresource: Some("status"),
        dry_run: false,
    }
}

/// Controller writes race with clients; a lost race is retried on the next pass, so it is only logged.
fn log_failure(what: &str, result: Result<Value, ApiError>) {
    if let Err(e) = result {
        tracing::debug!(what, error = %e, "controller write skipped");
    }
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

fn is_ready(pod: &Value) -> bool {
    meta::condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

fn is_finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// Puts `value` at `key` of a status map, leaving it out when zero (the real fields are `omitempty`).
fn set_count(status: &mut Value, key: &str, value: i64) {
    if value == 0 {
        if let Some(m) = status.as_object_mut() {
            m.remove(key);
        }
    } else {
        status[key] = json!(value);
    }
}

/// A stable short hash of a pod template, spelled with the alphabet real `pod-template-hash` labels use.
fn template_hash(template: &Value) -> String {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&json!(k).to_string());
                    out.push(':');
                    canonical(&map[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                items.iter().for_each(|i| {
                    canonical(i, out);
                    out.push(',');
                });
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(template, &mut text);
    // FNV-1a, 64 bit.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHABET[((hash >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// `maxUnavailable` of a RollingUpdate deployment resolved against the desired replicas (percentages round down).
fn max_unavailable(deployment: &Value, desired: i64) -> i64 {
    let strategy = &deployment["spec"]["strategy"];
    if strategy["type"] == "Recreate" {
        return 0;
    }
    match &strategy["rollingUpdate"]["maxUnavailable"] {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(0, |p| desired * p / 100),
        _ => desired * 25 / 100,
    }
}

/// Runs the control loops.
pub struct Controllers {
    api: Arc<Api>,
    settings: Settings,
    kinds: Kinds,
    /// When each pending pod was first seen, to make it ready `ready_delay` later.
    pending_since: HashMap<String, Instant>,
    next_pod_ip: u32,
    /// Runs containers of run images; `None` when there are none.
    kubelet: Option<Arc<Kubelet>>,
}

impl Controllers {
    pub fn new(api: Arc<Api>, settings: Settings, kubelet: Option<Arc<Kubelet>>) -> Self {
        let kinds = Kinds::new(&api);
        Self {
            api,
            settings,
            kinds,
            pending_since: HashMap::new(),
            next_pod_ip: 2,
            kubelet,
        }
    }

    /// Creates what a fresh cluster has: the system namespaces, the Nodes and the `kubernetes` Service.
    pub fn bootstrap(&self, api_port: u16) -> Result<(), ApiError> {
        let system = main_write("kube-apiserver");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.api.create(
                &self.kinds.namespaces,
                "",
                json!({"metadata": {"name": ns}}),
                system,
            )?;
        }
        for i in 1..=self.settings.nodes {
            let name = format!("emulator-node-{i}");
            let node = json!({
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                }},
                "spec": {"podCIDR": format!("10.244.{i}.0/24"), "podCIDRs": [format!("10.244.{i}.0/24")]},
            });
            self.api
                .create(&self.kinds.nodes, "", node, main_write("kubelet"))?;
            let resources =
                json!({"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"});
            let ip = format!("10.0.0.{}", i + 1);
            self.api.update_with(&self.kinds.nodes, "", &name, status_write("kubelet"), |node| {
                let mut node = node.clone();
                node["status"] = json!({
                    "capacity": resources,
                    "allocatable": resources,
                    "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                    "nodeInfo": {
                        "kubeletVersion": "v1.32.0",
                        "kubeProxyVersion": "v1.32.0",
                        "containerRuntimeVersion": "containerd://1.7.24",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "osImage": "kube-emulator",
                        "kernelVersion": "6.1.0",
                        "machineID": format!("emulator-{i}"),
                        "systemUUID": format!("emulator-{i}"),
                        "bootID": format!("emulator-{i}"),
                    },
                    "conditions": [],
                });
                for (kind, status, reason, message) in [
                    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ] {
                    meta::set_condition(&mut node["status"]["conditions"], kind, status, reason, message, false);
                }
                Ok(node)
            })?;
        }
        let service = json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": api_port}]}});
        self.api
            .create(&self.kinds.services, "default", service, system)?;
        Ok(())
    }

    /// Reconciles forever, after every change and at least once a second.
    pub async fn run(mut self) {
        loop {
            let next = self.reconcile();
            let wait = next
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = self.api.store.changed() => {
                    // Let a burst of client writes land before the next pass.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn list(&self, res: &ResourceInfo) -> Vec<Value> {
        self.api
            .list(res, None, &Filter::default(), &Page::default())
            .ok()
            .and_then(|mut list| list["items"].as_array_mut().map(std::mem::take))
            .unwrap_or_default()
    }

    /// One pass over every loop; returns when something time-based is next due.
    fn reconcile(&mut self) -> Option<Instant> {
        self.namespaces();
        self.crds();
        let mut next = self.deployments();
        self.replica_sets();
        self.jobs();
        next = earliest(next, self.kubelet());
        self.load_balancers();
        self.api.collect_garbage();
        next
    }

    fn namespaces(&self) {
        let service_accounts = self.list(&self.kinds.service_accounts);
        for ns in self.list(&self.kinds.namespaces) {
            let name = meta::name(&ns);
            if meta::is_deleting(&ns) {
                self.api.purge_namespace(name);
                continue;
            }
            let has_default = service_accounts
                .iter()
                .any(|sa| meta::namespace(sa) == name && meta::name(sa) == "default");
            if !has_default {
                let sa = json!({"metadata": {"name": "default"}});
                log_failure(
                    "default service account",
                    self.api.create(
                        &self.kinds.service_accounts,
                        name,
                        sa,
                        main_write(CONTROLLER_MANAGER),
                    ),
                );
            }
        }
    }

    fn crds(&self) {
        for crd in self.list(&self.kinds.crds) {
            if meta::condition(&crd, "Established").is_some_and(|c| c["status"] == "True") {
                continue;
            }
            let result = self.api.update_with(
                &self.kinds.crds,
                "",
                meta::name(&crd),
                status_write("kube-apiserver"),
                |crd| {
                    let mut crd = crd.clone();
                    let mut names = crd["spec"]["names"].clone();
                    let kind = names["kind"].as_str().unwrap_or_default().to_string();
                    if names["singular"].is_null() {
                        names["singular"] = json!(kind.to_lowercase());
                    }
                    if names["listKind"].is_null() {
                        names["listKind"] = json!(format!("{kind}List"));
                    }
                    let stored: Vec<Value> = crd["spec"]["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|v| v["storage"] == Value::Bool(true))
                        .map(|v| v["name"].clone())
                        .collect();
                    crd["status"]["acceptedNames"] = names;
                    crd["status"]["storedVersions"] = json!(stored);
                    let conditions = &mut crd["status"]["conditions"];
                    meta::set_condition(
                        conditions,
                        "NamesAccepted",
                        "True",
                        "NoConflicts",
                        "no conflicts found",
                        false,
                    );
                    meta::set_condition(
                        conditions,
                        "Established",
                        "True",
                        "InitialNamesAccepted",
                        "the initial names have been accepted",
                        false,
                    );
                    Ok(crd)
                },
            );
            log_failure("crd status", result);
        }
    }

    fn deployments(&self) -> Option<Instant> {
        let replica_sets = self.list(&self.kinds.replica_sets);
        let mut next = None;
        for deployment in self.list(&self.kinds.deployments) {
            if meta::is_deleting(&deployment) {
                continue;
            }
            let owned: Vec<&Value> = replica_sets
                .iter()
                .filter(|rs| meta::is_controlled_by(rs, meta::uid(&deployment)))
                .collect();
            next = earliest(next, self.deployment(&deployment, &owned));
        }
        next
    }

    fn deployment(&self, deployment: &Value, owned: &[&Value]) -> Option<Instant> {
        let ns = meta::namespace(deployment);
        let name = meta::name(deployment);
        let desired = int(&deployment["spec"]["replicas"]);
        let template = &deployment["spec"]["template"];
        let hash = template_hash(template);
        let revision_of = |rs: &Value| {
            rs["metadata"]["annotations"][REVISION]
                .as_str()
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let max_revision = owned.iter().map(|rs| revision_of(rs)).max().unwrap_or(0);
        let new_rs = owned
            .iter()
            .find(|rs| rs["metadata"]["labels"][TEMPLATE_HASH] == hash.as_str())
            .copied();
        let rs_name = format!("{name}-{hash}");
        let revision = match new_rs {
            None => {
                self.create_replica_set(deployment, &rs_name, &hash, max_revision + 1);
                max_revision + 1
            }
            Some(rs) => {
                // A template that comes back (rollback) becomes the newest revision again.
                let revision = if revision_of(rs) < max_revision {
                    max_revision + 1
                } else {
                    revision_of(rs)
                };
                if int(&rs["spec"]["replicas"]) != desired || revision_of(rs) != revision {
                    let result = self.api.update_with(&self.kinds.replica_sets, ns, meta::name(rs), main_write(CONTROLLER_MANAGER), |rs| {
                        let mut rs = rs.clone();
                        rs["spec"]["replicas"] = json!(desired);
                        rs["metadata"]["annotations"][REVISION] = json!(revision.to_string());
                        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = json!(desired.to_string());
                        Ok(rs)
                    });
                    log_failure("scale new replica set", result);
                }
                revision
            }
        };
        // Old replica sets go away once the new one is fully available (or at once with Recreate).
        let new_available = new_rs.map_or(0, |rs| int(&rs["status"]["availableReplicas"]));
        let recreate = deployment["spec"]["strategy"]["type"] == "Recreate";
        if recreate || new_available >= desired {
            for old in owned
                .iter()
                .filter(|rs| rs["metadata"]["labels"][TEMPLATE_HASH] != hash.as_str())
            {
                if int(&old["spec"]["replicas"]) != 0 {
                    let result = self.api.update_with(
                        &self.kinds.replica_sets,
                        ns,
                        meta::name(old),
                        main_write(CONTROLLER_MANAGER),
                        |rs| {
                            let mut rs = rs.clone();
                            rs["spec"]["replicas"] = json!(0);
                            Ok(rs)
                        },
                    );
                    log_failure("scale down old replica set", result);
                }
            }
        }
        if deployment["metadata"]["annotations"][REVISION] != revision.to_string().as_str() {
            let result = self.api.update_with(
                &self.kinds.deployments,
                ns,
                name,
                main_write(CONTROLLER_MANAGER),
                |d| {
                    let mut d = d.clone();
                    d["metadata"]["annotations"][REVISION] = json!(revision.to_string());
                    Ok(d)
                },
            );
            log_failure("deployment revision", result);
        }
        self.deployment_status(deployment, owned, new_rs, &rs_name, desired)
    }

    fn create_replica_set(&self, deployment: &Value, rs_name: &str, hash: &str, revision: i64) {
        let desired = int(&deployment["spec"]["replicas"]);
        let mut template = deployment["spec"]["template"].clone();
        template["metadata"]["labels"][TEMPLATE_HASH] = json!(hash);
        let mut selector = deployment["spec"]["selector"].clone();
        selector["matchLabels"][TEMPLATE_HASH] = json!(hash);
        let rs = json!({
            "metadata": {
                "name": rs_name,
                "labels": template["metadata"]["labels"],
                "annotations": {
                    REVISION: revision.to_string(),
                    "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                },
                "ownerReferences": [meta::controller_ref(deployment)],
            },
            "spec": {
                "replicas": desired,
                "minReadySeconds": deployment["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                "selector": selector,
                "template": template,
            },
        });
        log_failure(
            "create replica set",
            self.api.create(
                &self.kinds.replica_sets,
                meta::namespace(deployment),
                rs,
                main_write(CONTROLLER_MANAGER),
            ),
        );
    }

    fn deployment_status(
        &self,
        deployment: &Value,
        owned: &[&Value],
        new_rs: Option<&Value>,
        rs_name: &str,
        desired: i64,
    ) -> Option<Instant> {
        let sum = |field: &str| {
            owned
                .iter()
                .map(|rs| int(&rs["status"][field]))
                .sum::<i64>()
        };
        let replicas = sum("replicas");
        let ready = sum("readyReplicas");
        let available = sum("availableReplicas");
        let updated = new_rs.map_or(0, |rs| int(&rs["status"]["replicas"]));
        let new_available = new_rs.map_or(0, |rs| int(&rs["status"]["availableReplicas"]));
        let complete = new_rs.is_some()
            && updated == desired
            && replicas == desired
            && new_available == desired;
        let minimum = available >= desired - max_unavailable(deployment, desired);
        let deadline_seconds = deployment["spec"]["progressDeadlineSeconds"]
            .as_i64()
            .unwrap_or(600);
        let generation = deployment["metadata"]["generation"].clone();

        let progressing = meta::condition(deployment, "Progressing").cloned();
        let since_progress = progressing
            .as_ref()
            .and_then(|c| c["lastUpdateTime"].as_str().and_then(meta::parse_time))
            .map(|t| (chrono::Utc::now() - t).num_seconds());
        let timed_out = !complete
            && (progressing
                .as_ref()
                .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
                || since_progress.is_some_and(|s| s >= deadline_seconds))
            && new_rs.is_some();
        let next = if complete || timed_out {
            None
        } else {
            let remaining = deadline_seconds - since_progress.unwrap_or(0);
            Some(Instant::now() + Duration::from_secs(remaining.max(1) as u64))
        };

        let result = self.api.update_with(
            &self.kinds.deployments,
            meta::namespace(deployment),
            meta::name(deployment),
            status_write(CONTROLLER_MANAGER),
            |d| {
                let mut d = d.clone();
                if !d["status"].is_object() {
                    d["status"] = json!({});
                }
                let status = &mut d["status"];
                status["observedGeneration"] = generation.clone();
                set_count(status, "replicas", replicas);
                set_count(status, "updatedReplicas", updated);
                set_count(status, "readyReplicas", ready);
                set_count(status, "availableReplicas", available);
                set_count(status, "unavailableReplicas", (desired - available).max(0));
                let conditions = &mut status["conditions"];
                if minimum {
                    meta::set_condition(
                        conditions,
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        true,
                    );
                } else {
                    meta::set_condition(
                        conditions,
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                        true,
                    );
                }
                let current_reason = progressing.as_ref().map(|c| c["reason"].clone());
                let (state, reason, message) = if complete {
                    (
                        "True",
                        "NewReplicaSetAvailable",
                        format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                    )
                } else if timed_out {
                    (
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                    )
                } else if new_rs.is_none() || current_reason.is_none() {
                    (
                        "True",
                        "NewReplicaSetCreated",
                        format!("Created new replica set \"{rs_name}\""),
                    )
                } else {
                    (
                        "True",
                        "ReplicaSetUpdated",
                        format!("ReplicaSet \"{rs_name}\" is progressing."),
                    )
                };
                meta::set_condition(conditions, "Progressing", state, reason, &message, true);
                Ok(d)
            },
        );
        log_failure("deployment status", result);
        next
    }

    fn replica_sets(&self) {
        let pods = self.list(&self.kinds.pods);
        for rs in self.list(&self.kinds.replica_sets) {
            if meta::is_deleting(&rs) {
                continue;
            }
            let ns = meta::namespace(&rs);
            let mut owned: Vec<&Value> = pods
                .iter()
                .filter(|p| meta::is_controlled_by(p, meta::uid(&rs)) && !meta::is_deleting(p))
                .collect();
            let desired = int(&rs["spec"]["replicas"]);
            let count = owned.len() as i64;
            for _ in count..desired {
                self.create_pod(&rs, &rs["spec"]["template"], json!({}));
            }
            if count > desired {
                // Remove unready pods first, then the newest, as the real controller prefers.
                owned.sort_by_key(|p| {
                    (
                        is_ready(p),
                        std::cmp::Reverse(
                            p["metadata"]["creationTimestamp"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        ),
                    )
                });
                for pod in owned.iter().take((count - desired) as usize) {
                    log_failure(
                        "delete surplus pod",
                        self.api.delete(
                            &self.kinds.pods,
                            ns,
                            meta::name(pod),
                            &Default::default(),
                            false,
                        ),
                    );
                }
            }
            let ready = owned.iter().filter(|p| is_ready(p)).count() as i64;
            let generation = rs["metadata"]["generation"].clone();
            let result = self.api.update_with(
                &self.kinds.replica_sets,
                ns,
                meta::name(&rs),
                status_write(CONTROLLER_MANAGER),
                |rs| {
                    let mut rs = rs.clone();
                    if !rs["status"].is_object() {
                        rs["status"] = json!({});
                    }
                    let status = &mut rs["status"];
                    status["replicas"] = json!(count);
                    set_count(status, "fullyLabeledReplicas", count);
                    set_count(status, "readyReplicas", ready);
                    set_count(status, "availableReplicas", ready);
                    status["observedGeneration"] = generation.clone();
                    Ok(rs)
                },
            );
            log_failure("replica set status", result);
        }
    }

    /// Creates a pod from `template` controlled by `owner`, with `extra_labels` added.
    fn create_pod(&self, owner: &Value, template: &Value, extra_labels: Value) {
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        for (k, v) in extra_labels.as_object().into_iter().flatten() {
            labels[k] = v.clone();
        }
        let mut metadata = json!({
            "generateName": format!("{}-", meta::name(owner)),
            "labels": labels,
            "ownerReferences": [meta::controller_ref(owner)],
        });
        if template["metadata"]["annotations"].is_object() {
            metadata["annotations"] = template["metadata"]["annotations"].clone();
        }
        let pod = json!({"metadata": metadata, "spec": template["spec"]});
        log_failure(
            "create pod",
            self.api.create(
                &self.kinds.pods,
                meta::namespace(owner),
                pod,
                main_write(CONTROLLER_MANAGER),
            ),
        );
    }

    fn jobs(&self) {
        let pods = self.list(&self.kinds.pods);
        for job in self.list(&self.kinds.jobs) {
            let done = meta::condition(&job, "Complete").is_some_and(|c| c["status"] == "True");
            if meta::is_deleting(&job) || done || job["spec"]["suspend"] == Value::Bool(true) {
                continue;
            }
            let owned: Vec<&Value> = pods
                .iter()
                .filter(|p| meta::is_controlled_by(p, meta::uid(&job)))
                .collect();
            let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
            let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
            let succeeded = owned
                .iter()
                .filter(|p| p["status"]["phase"] == "Succeeded")
                .count() as i64;
            let active = owned.iter().filter(|p| !is_finished(p)).count() as i64;
            let ready = owned.iter().filter(|p| is_ready(p)).count() as i64;
            let wanted_active = parallelism.min(completions - succeeded).max(0);
            for _ in active..wanted_active {
                let uid = meta::uid(&job);
                let labels = json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": meta::name(&job),
                    "controller-uid": uid, "job-name": meta::name(&job)});
                self.create_pod(&job, &job["spec"]["template"], labels);
            }
            let complete = succeeded >= completions;
            let result = self.api.update_with(
                &self.kinds.jobs,
                meta::namespace(&job),
                meta::name(&job),
                status_write(CONTROLLER_MANAGER),
                |job| {
                    let mut job = job.clone();
                    if !job["status"].is_object() {
                        job["status"] = json!({});
                    }
                    let status = &mut job["status"];
                    if status["startTime"].is_null() {
                        status["startTime"] = json!(meta::now());
                    }
                    set_count(status, "active", if complete { 0 } else { active });
                    set_count(status, "succeeded", succeeded);
                    status["ready"] = json!(if complete { 0 } else { ready });
                    status["terminating"] = json!(0);
                    status["uncountedTerminatedPods"] = json!({});
                    if complete {
                        status["completionTime"] = json!(meta::now());
                        let conditions = &mut status["conditions"];
                        meta::set_condition(
                            conditions,
                            "SuccessCriteriaMet",
                            "True",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                            false,
                        );
                        meta::set_condition(
                            conditions,
                            "Complete",
                            "True",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                            false,
                        );
                    }
                    Ok(job)
                },
            );
            log_failure("job status", result);
        }
    }

    /// Scheduler and kubelet: binds pending pods to a node and starts them once `ready_delay` has passed;
    /// stops the processes of pods that are gone.
    fn kubelet(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut next = None;
        let mut still_pending = HashMap::new();
        let pods = self.list(&self.kinds.pods);
        if let Some(kubelet) = &self.kubelet {
            let live: HashSet<&str> = pods
                .iter()
                .filter(|p| !meta::is_deleting(p))
                .map(meta::uid)
                .collect();
            kubelet.retain(&live);
        }
        for pod in pods {
            let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
            if phase != "Pending" || meta::is_deleting(&pod) {
                continue;
            }
            let uid = meta::uid(&pod).to_string();
            let since = self.pending_since.get(&uid).copied().unwrap_or(now);
            let due = since + self.settings.ready_delay;
            if due > now {
                still_pending.insert(uid, since);
                next = earliest(next, Some(due));
                continue;
            }
            self.start_pod(&pod);
        }
        self.pending_since = still_pending;
        next
    }

    fn start_pod(&mut self, pod: &Value) {
        let ns = meta::namespace(pod);
        let name = meta::name(pod);
        let node = match pod["spec"]["nodeName"].as_str() {
            Some(node) => node.to_string(),
            None => {
                let index =
                    name.bytes().map(usize::from).sum::<usize>() % self.settings.nodes.max(1);
                let node = format!("emulator-node-{}", index + 1);
                let result = self.api.update_with(
                    &self.kinds.pods,
                    ns,
                    name,
                    main_write("kube-scheduler"),
                    |p| {
                        let mut p = p.clone();
                        p["spec"]["nodeName"] = json!(node);
                        Ok(p)
                    },
                );
                log_failure("bind pod", result);
                node
            }
        };
        let containers: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let never_ready = containers.iter().any(|c| {
            c["image"]
                .as_str()
                .is_some_and(|i| i.contains(&self.settings.never_ready_marker))
        });
        let job_pod = pod["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["kind"] == "Job" && r["controller"] == Value::Bool(true));
        let succeeded = job_pod && !never_ready;
        let ready = !never_ready && !succeeded;
        let started = meta::now();
        let pod_ip = format!(
            "10.244.{}.{}",
            (self.next_pod_ip >> 8) & 0xff,
            self.next_pod_ip & 0xff
        );
        self.next_pod_ip += 1;
        let node_index: u32 = node
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(1);
        let host_ip = format!("10.0.0.{}", node_index + 1);
        let runner = self.kubelet.as_ref();
        let runs = |c: &Value| {
            runner.is_some_and(|k| {
                k.binary_for(c["image"].as_str().unwrap_or_default())
                    .is_some()
            })
        };
        let statuses: Vec<Value> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let id = kubelet::container_id(meta::uid(pod), i);
                // A run container's process reports its own state once it has started.
                let (state, ready) = if runs(c) {
                    (json!({"waiting": {"reason": "ContainerCreating"}}), false)
                } else if succeeded {
                    let terminated = json!({"exitCode": 0, "reason": "Completed", "startedAt": started,
                        "finishedAt": started, "containerID": id});
                    (json!({"terminated": terminated}), false)
                } else {
                    (json!({"running": {"startedAt": started}}), ready)
                };
                kubelet::container_status(c, &id, state, ready, 0, json!({}))
            })
            .collect();
        let any_runs = containers.iter().any(runs);
        let result =
            self.api
                .update_with(&self.kinds.pods, ns, name, status_write("kubelet"), |p| {
                    let mut p = p.clone();
                    let status = &mut p["status"];
                    status["hostIP"] = json!(host_ip);
                    status["hostIPs"] = json!([{"ip": host_ip}]);
                    status["podIP"] = json!(pod_ip);
                    status["podIPs"] = json!([{"ip": pod_ip}]);
                    status["startTime"] = json!(started);
                    status["containerStatuses"] = json!(statuses);
                    kubelet::refresh_pod_status(status);
                    Ok(p)
                });
        match (result, runner) {
            (Ok(pod), Some(runner)) if any_runs => runner.launch(&pod, never_ready),
            (result, _) => log_failure("pod status", result),
        }
    }

    /// LoadBalancer Services and Ingresses get a loopback address, standing in for a cloud load balancer.
    fn load_balancers(&self) {
        let needs_address = |o: &Value| {
            o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .is_none_or(Vec::is_empty)
        };
        let targets = self
            .list(&self.kinds.services)
            .into_iter()
            .filter(|s| s["spec"]["type"] == "LoadBalancer")
            .map(|s| (&self.kinds.services, s))
            .chain(
                self.list(&self.kinds.ingresses)
                    .into_iter()
                    .map(|i| (&self.kinds.ingresses, i)),
            );
        for (res, object) in targets {
            if !needs_address(&object) || meta::is_deleting(&object) {
                continue;
            }
            let result = self.api.update_with(
                res,
                meta::namespace(&object),
                meta::name(&object),
                status_write(CONTROLLER_MANAGER),
                |o| {
                    let mut o = o.clone();
                    o["status"]["loadBalancer"] = json!({"ingress": [{"ip": "127.0.0.1"}]});
                    Ok(o)
                },
            );
            log_failure("load balancer status", result);
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_ignores_key_order_and_tracks_changes() {
        let a = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "i:1", "name": "c"}]}, "metadata": {"labels": {"app": "x"}}});
        let c = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:2"}]}});
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&c));
        assert_eq!(template_hash(&a).len(), 10);
    }

    #[test]
    fn max_unavailable_resolves_percentages() {
        let d = |v: Value| json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": v}}}});
        assert_eq!(max_unavailable(&d(json!("25%")), 4), 1);
        assert_eq!(max_unavailable(&d(json!("25%")), 1), 0);
        assert_eq!(max_unavailable(&d(json!(2)), 4), 2);
    }
}
