//! Pods the real scheduler bound to the simulated nodes, driven as a kubelet drives them: containers created,
//! started (mapped images as local processes, the rest simulated), restarted per `restartPolicy` with backoff,
//! their status written to `pods/status`; pods being deleted are stopped with their grace period and then
//! removed from the API (delete with grace 0, as the kubelet confirms termination).
//!
//! Files: `<pods dir>/<namespace>_<pod>_<uid>/` holds `volumes/<volume>/`, `rootfs/<container>/` (a process's
//! working directory and `HOME`, with its mounts linked in) and `containers/<container>/` with one log file per
//! start (`0.log`, `1.log`, ...) and the `exit` control file of a simulated container ([`ContainerControl`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::objects::Objects;
use super::{ConfigError, RunImage, Settings, launch, logs, process};

/// Restart delays double from `restart_backoff` up to this multiple of it (the kubelet's 10 s to 5 min).
const BACKOFF_CAP_FACTOR: u32 = 30;
/// Grace period when neither the deletion nor the pod spec gives one (the API default).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// How often a simulated container looks for its `exit` control file.
const CONTROL_POLL: Duration = Duration::from_millis(100);

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Which start of a container its log file belongs to, and whether that start has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    pub restart: u32,
    pub running: bool,
}

/// A pod by identity: a re-created pod of the same name has another uid and is not it.
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub dir: PathBuf,
    restart_policy: String,
}

impl PodRef {
    pub fn container_dir(&self, container: &str) -> PathBuf {
        self.dir.join("containers").join(container)
    }
}

/// What the pod's containers report, written to `pods/status` as a whole.
struct PodStatus {
    pod_ip: String,
    start_time: String,
    /// Each container's status, in spec order.
    containers: Mutex<Vec<Value>>,
    /// Conditions as last written, so a transition time only moves when the status does.
    conditions: Mutex<BTreeMap<String, (String, String)>>,
    /// Serializes status writes, so the last write carries every container's latest state.
    write: tokio::sync::Mutex<()>,
    /// Serializes volume writes of the pod's containers, which may share volumes.
    volumes: tokio::sync::Mutex<()>,
    logs: HashMap<String, watch::Sender<LogState>>,
}

/// A pod whose containers are supervised.
struct PodRun {
    pod: Arc<PodRef>,
    /// Set to `Some(grace)` to stop the supervisors; dropping it stops them at once.
    stop: watch::Sender<Option<Duration>>,
    tasks: Vec<JoinHandle<()>>,
    status: Arc<PodStatus>,
    /// `terminationGracePeriodSeconds`, for stopping the pod when the simulator shuts down.
    grace: Duration,
}

/// The pods of all simulated nodes.
pub struct Kubelet {
    client: kube::Client,
    objects: Objects,
    settings: Settings,
    run_images: Vec<RunImage>,
    pods_dir: PathBuf,
    apiserver: SocketAddr,
    nodes: HashSet<String>,
    runs: Mutex<HashMap<String, PodRun>>,
    terminating: Mutex<HashSet<String>>,
    next_ip: AtomicU32,
}

impl Kubelet {
    pub fn new(
        client: kube::Client,
        settings: Settings,
        run_images: Vec<RunImage>,
        pods_dir: PathBuf,
        apiserver: SocketAddr,
        nodes: Vec<String>,
    ) -> Self {
        Self {
            objects: Objects::new(client.clone()),
            client,
            settings,
            run_images,
            pods_dir,
            apiserver,
            nodes: nodes.into_iter().collect(),
            runs: Mutex::new(HashMap::new()),
            terminating: Mutex::new(HashSet::new()),
            next_ip: AtomicU32::new(2),
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodRun>> {
        // The map stays consistent even if a holder panicked (single inserts and removals).
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches every pod and acts on those bound to a simulated node, until aborted.
    pub async fn run(self: Arc<Self>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(events);
        // Pods seen during a (re)list; runs of pods deleted while the watch was down are stopped after it.
        let mut listed: HashSet<String> = HashSet::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::InitApply(pod)) => {
                    listed.insert(pod.uid().unwrap_or_default());
                    self.observe(pod);
                }
                Ok(Event::Init) => listed.clear(),
                Ok(Event::InitDone) => {
                    let vanished: Vec<PodRun> = {
                        let mut runs = self.runs();
                        let gone: Vec<String> = runs
                            .keys()
                            .filter(|uid| !listed.contains(*uid))
                            .cloned()
                            .collect();
                        gone.iter().filter_map(|uid| runs.remove(uid)).collect()
                    };
                    for run in vanished {
                        tokio::spawn(stop(run, Duration::ZERO));
                    }
                }
                Ok(Event::Apply(pod)) => self.observe(pod),
                Ok(Event::Delete(pod)) => {
                    let run = self.runs().remove(&pod.uid().unwrap_or_default());
                    if let Some(run) = run {
                        tokio::spawn(stop(run, Duration::ZERO));
                    }
                }
                Err(error) => tracing::warn!(%error, "pod watch failed; retrying"),
            }
        }
    }

    /// The container's log state and its directory, for the log endpoint.
    pub fn container_log(
        &self,
        namespace: &str,
        name: &str,
        container: Option<&str>,
    ) -> Result<(PathBuf, watch::Receiver<LogState>), String> {
        let runs = self.runs();
        let run = runs
            .values()
            .find(|r| r.pod.namespace == namespace && r.pod.name == name)
            .ok_or_else(|| {
                format!("pod \"{name}\" in namespace \"{namespace}\" is not running on this node")
            })?;
        let container = match container {
            Some(container) => container.to_string(),
            None if run.status.logs.len() == 1 => {
                run.status.logs.keys().next().expect("one entry").clone()
            }
            None => {
                return Err(format!(
                    "a container name must be specified for pod {name}, choose one of: {:?}",
                    run.status.logs.keys().collect::<Vec<_>>()
                ));
            }
        };
        let state = run.status.logs.get(&container).ok_or_else(|| {
            format!("container \"{container}\" in pod \"{name}\" is not available")
        })?;
        Ok((run.pod.container_dir(&container), state.subscribe()))
    }

    fn observe(self: &Arc<Self>, pod: Pod) {
        let on_my_node = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_name.as_ref())
            .is_some_and(|node| self.nodes.contains(node));
        if !on_my_node {
            return;
        }
        let uid = pod.uid().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            let first = self
                .terminating
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid.clone());
            if first {
                tokio::spawn(self.clone().terminate(pod));
            }
            return;
        }
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        if finished || self.runs().contains_key(&uid) {
            return;
        }
        let Ok(value) = serde_json::to_value(&pod) else {
            return;
        };
        self.launch(&value);
    }

    /// Starts supervising the containers of a newly bound pod.
    fn launch(self: &Arc<Self>, pod: &Value) {
        let (namespace, name, uid) = (
            super::meta::namespace(pod),
            super::meta::name(pod),
            super::meta::uid(pod),
        );
        let pod_ref = Arc::new(PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            dir: self.pods_dir.join(format!("{namespace}_{name}_{uid}")),
            restart_policy: pod["spec"]["restartPolicy"]
                .as_str()
                .unwrap_or("Always")
                .to_string(),
        });
        let containers: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ip = self.next_ip.fetch_add(1, Ordering::Relaxed);
        let pod_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + ip).to_string();
        let status = Arc::new(PodStatus {
            pod_ip,
            start_time: now(),
            containers: Mutex::new(
                containers
                    .iter()
                    .enumerate()
                    .map(|(index, c)| {
                        let waiting = json!({"waiting": {"reason": "ContainerCreating"}});
                        container_status(c, &container_id(uid, index), waiting, false, 0, json!({}))
                    })
                    .collect(),
            ),
            conditions: Mutex::new(BTreeMap::new()),
            write: tokio::sync::Mutex::new(()),
            volumes: tokio::sync::Mutex::new(()),
            logs: containers
                .iter()
                .filter_map(|c| c["name"].as_str())
                .map(|c| {
                    let initial = LogState {
                        restart: 0,
                        running: false,
                    };
                    (c.to_string(), watch::Sender::new(initial))
                })
                .collect(),
        });
        let (stop, _) = watch::channel(None);
        let mut tasks = Vec::new();
        for (index, container) in containers.iter().enumerate() {
            let image = container["image"].as_str().unwrap_or_default();
            let runner = match self.binary_for(image) {
                Some(binary) => Runner::Process(binary.to_path_buf()),
                None => Runner::Simulated,
            };
            let supervisor = Supervisor {
                kubelet: self.clone(),
                pod: pod_ref.clone(),
                status: status.clone(),
                index,
                container: container["name"].as_str().unwrap_or_default().to_string(),
                id: container_id(uid, index),
                runner,
                ready_when_running: !image.contains(&self.settings.never_ready_marker),
                stop: stop.subscribe(),
            };
            tasks.push(tokio::spawn(supervisor.run()));
        }
        tracing::info!(namespace, pod = name, "pod started");
        let grace = pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .map_or(DEFAULT_GRACE, Duration::from_secs);
        self.runs().insert(
            uid.to_string(),
            PodRun {
                pod: pod_ref,
                stop,
                tasks,
                status,
                grace,
            },
        );
    }

    /// The binary for `image`: the longest matching prefix wins.
    fn binary_for(&self, image: &str) -> Option<&Path> {
        self.run_images
            .iter()
            .filter(|i| image.starts_with(&i.prefix))
            .max_by_key(|i| i.prefix.len())
            .map(|i| i.binary.as_path())
    }

    /// Stops a pod being deleted with its grace period, then confirms the deletion to the API server.
    async fn terminate(self: Arc<Self>, pod: Pod) {
        let uid = pod.uid().unwrap_or_default();
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
            .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64));
        let run = self.runs().remove(&uid);
        if let Some(run) = run {
            stop(run, grace).await;
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {
                tracing::info!(namespace = ?pod.namespace(), pod = %pod.name_any(), "pod terminated")
            }
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => {
                tracing::warn!(pod = %pod.name_any(), %error, "cannot confirm pod deletion")
            }
        }
        self.terminating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uid);
    }

    /// Stops every pod with its grace period and waits until all are gone.
    pub async fn shutdown(&self) {
        let runs: Vec<PodRun> = self.runs().drain().map(|(_, run)| run).collect();
        let stops = runs.into_iter().map(|run| {
            let grace = run.grace;
            stop(run, grace)
        });
        futures::future::join_all(stops).await;
    }

    /// Aborts every supervisor at once; each drops its process, which kills the process group. (Supervisors
    /// hold the kubelet, so this cannot wait for the kubelet's own drop.)
    pub fn abort_all(&self) {
        for (_, run) in self.runs().drain() {
            run.tasks.iter().for_each(JoinHandle::abort);
        }
    }
}

/// Stops one pod's supervisors and removes its directory after they have finished.
async fn stop(run: PodRun, grace: Duration) {
    let _ = run.stop.send(Some(grace));
    for task in run.tasks {
        let _ = task.await;
    }
    if let Err(error) = std::fs::remove_dir_all(&run.pod.dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %run.pod.dir.display(), %error, "cannot remove pod directory");
    }
}

/// `containerID` of a container status.
fn container_id(pod_uid: &str, index: usize) -> String {
    format!("simulated://{pod_uid}-{index}")
}

/// One entry of `status.containerStatuses`; `state` is `{"running"|"waiting"|"terminated": {...}}`.
fn container_status(
    container: &Value,
    id: &str,
    state: Value,
    ready: bool,
    restarts: u32,
    last_state: Value,
) -> Value {
    let image = container["image"].as_str().unwrap_or_default();
    json!({
        "name": container["name"],
        "image": image,
        "imageID": format!("{image}@sha256:{}", "0".repeat(64)),
        "containerID": id,
        "ready": ready,
        "started": state["running"].is_object(),
        "restartCount": restarts,
        "state": state,
        "lastState": last_state,
    })
}

impl PodStatus {
    /// The whole `status` from the containers' states: finished when every container has terminated for good
    /// (Succeeded when all exited 0), running once any has started, ready when every container is.
    fn render(&self, node_ip: &str) -> Value {
        let containers = self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let finished = !containers.is_empty()
            && containers
                .iter()
                .all(|c| c["state"]["terminated"].is_object());
        // A container waiting to restart after an exit has run: the pod stays Running, as on a kubelet.
        let started = containers.iter().any(|c| {
            c["state"]["running"].is_object()
                || c["restartCount"] != 0
                || c["lastState"]["terminated"].is_object()
        });
        let phase = if finished {
            if containers
                .iter()
                .all(|c| c["state"]["terminated"]["exitCode"] == 0)
            {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if started {
            "Running"
        } else {
            "Pending"
        };
        let unready: Vec<&str> = containers
            .iter()
            .filter(|c| c["ready"] != Value::Bool(true))
            .filter_map(|c| c["name"].as_str())
            .collect();
        let (ready, reason, message) = if unready.is_empty() {
            ("True", "", String::new())
        } else if phase == "Succeeded" {
            ("False", "PodCompleted", String::new())
        } else {
            (
                "False",
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        };
        let sandbox = if finished { "False" } else { "True" };
        let mut known = self.conditions.lock().unwrap_or_else(|e| e.into_inner());
        let mut condition = |kind: &str, status: &str, reason: &str, message: &str| {
            let time = match known.get(kind) {
                Some((previous, time)) if previous == status => time.clone(),
                _ => now(),
            };
            known.insert(kind.to_string(), (status.to_string(), time.clone()));
            let mut value = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": time});
            if !reason.is_empty() {
                value["reason"] = json!(reason);
            }
            if !message.is_empty() {
                value["message"] = json!(message);
            }
            value
        };
        let conditions = vec![
            condition("PodReadyToStartContainers", sandbox, "", ""),
            condition("Initialized", "True", "", ""),
            condition("Ready", ready, reason, &message),
            condition("ContainersReady", ready, reason, &message),
            condition("PodScheduled", "True", "", ""),
        ];
        json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": node_ip,
            "hostIPs": [{"ip": node_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "containerStatuses": containers,
        })
    }
}

/// How a container's process is provided.
enum Runner {
    /// A local process of this binary.
    Process(PathBuf),
    /// Nothing runs: the container is running until stopped or until its `exit` control file appears.
    Simulated,
}

/// Runs one container: start, report, wait, restart with backoff per `restartPolicy`, until stopped.
struct Supervisor {
    kubelet: Arc<Kubelet>,
    pod: Arc<PodRef>,
    status: Arc<PodStatus>,
    index: usize,
    container: String,
    id: String,
    runner: Runner,
    /// False for images with the never-ready marker.
    ready_when_running: bool,
    stop: watch::Receiver<Option<Duration>>,
}

/// How one start attempt ended.
enum Attempt {
    /// The container could not be created; not a restart.
    NotCreated,
    /// The process ended (or never started) with this `terminated` state.
    Terminated(Value),
    /// The pod is gone or being stopped.
    Stopped,
}

impl Supervisor {
    async fn run(mut self) {
        let initial = self.kubelet.settings.restart_backoff;
        let cap = initial * BACKOFF_CAP_FACTOR;
        let mut backoff = initial;
        let mut restarts: u32 = 0;
        let mut last_state = json!({});
        self.report(
            json!({"waiting": {"reason": "ContainerCreating"}}),
            0,
            &last_state,
        )
        .await;
        loop {
            let started = Instant::now();
            let terminated = match self.attempt(restarts, &last_state).await {
                Attempt::Stopped => return,
                Attempt::NotCreated => {
                    if !self.pause(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(cap);
                    continue;
                }
                Attempt::Terminated(terminated) => terminated,
            };
            let failed = terminated["exitCode"] != 0;
            let restart = match self.pod.restart_policy.as_str() {
                "Never" => false,
                "OnFailure" => failed,
                _ => true,
            };
            if !restart {
                self.report(json!({"terminated": terminated}), restarts, &last_state)
                    .await;
                return;
            }
            // A process that ran as long as the longest delay was healthy: its crash starts a new series.
            if started.elapsed() >= cap {
                backoff = initial;
            }
            last_state = json!({"terminated": terminated});
            let message = format!(
                "back-off {backoff:?} restarting failed container={} pod={}_{}({})",
                self.container, self.pod.name, self.pod.namespace, self.pod.uid
            );
            self.report(
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}}),
                restarts,
                &last_state,
            )
            .await;
            if !self.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(cap);
            restarts += 1;
        }
    }

    fn set_log_state(&self, restart: u32, running: bool) {
        if let Some(state) = self.status.logs.get(&self.container) {
            state.send_replace(LogState { restart, running });
        }
    }

    /// One try at creating and running the container, reporting its state on the way.
    async fn attempt(&mut self, restarts: u32, last_state: &Value) -> Attempt {
        let dir = self.pod.container_dir(&self.container);
        if let Err(error) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), %error, "cannot create the container directory");
            return Attempt::NotCreated;
        }
        let log = logs::file(&dir, restarts);
        match &self.runner {
            Runner::Simulated => self.simulate(restarts, last_state, &dir, &log).await,
            Runner::Process(binary) => {
                let binary = binary.clone();
                self.run_process(&binary, restarts, last_state, log).await
            }
        }
    }

    async fn simulate(
        &mut self,
        restarts: u32,
        last_state: &Value,
        dir: &Path,
        log: &Path,
    ) -> Attempt {
        if restarts == 0 && !self.pause(self.kubelet.settings.ready_delay).await {
            return Attempt::Stopped;
        }
        let control = dir.join(EXIT_FILE);
        if let Err(error) = std::fs::File::create(log) {
            tracing::warn!(log = %log.display(), %error, "cannot create the log file");
        }
        let started_at = now();
        self.set_log_state(restarts, true);
        self.report(
            json!({"running": {"startedAt": started_at}}),
            restarts,
            last_state,
        )
        .await;
        loop {
            tokio::select! {
                _ = stop_requested(&mut self.stop) => {
                    self.set_log_state(restarts, false);
                    return Attempt::Stopped;
                }
                _ = tokio::time::sleep(CONTROL_POLL) => {}
            }
            if let Ok(text) = std::fs::read_to_string(&control) {
                let _ = std::fs::remove_file(&control);
                let code: i32 = text.trim().parse().unwrap_or(1);
                self.set_log_state(restarts, false);
                let reason = if code == 0 { "Completed" } else { "Error" };
                return Attempt::Terminated(json!({
                    "exitCode": code, "reason": reason, "startedAt": started_at,
                    "finishedAt": now(), "containerID": self.id,
                }));
            }
        }
    }

    async fn run_process(
        &mut self,
        binary: &Path,
        restarts: u32,
        last_state: &Value,
        log: PathBuf,
    ) -> Attempt {
        let pod = match self.current_pod().await {
            Ok(Some(pod)) => pod,
            Ok(None) => return Attempt::Stopped,
            // A passing API error must not end the container for good: it is retried with backoff.
            Err(error) => {
                let waiting =
                    json!({"waiting": {"reason": error.reason(), "message": error.to_string()}});
                self.report(waiting, restarts, last_state).await;
                return Attempt::NotCreated;
            }
        };
        let container = self.spec(&pod);
        let paths = launch::Paths {
            pod_dir: &self.pod.dir,
            apiserver: self.kubelet.apiserver,
        };
        let prepared = {
            let _volumes = self.status.volumes.lock().await;
            launch::prepare(&self.kubelet.objects, &pod, &container, &paths).await
        };
        let launch = match prepared {
            Ok(launch) => launch,
            Err(error) => {
                tracing::info!(pod = %self.pod.name, container = %self.container, %error, "container not created");
                let waiting =
                    json!({"waiting": {"reason": error.reason(), "message": error.to_string()}});
                self.report(waiting, restarts, last_state).await;
                return Attempt::NotCreated;
            }
        };
        let started_at = now();
        self.set_log_state(restarts, true);
        let mut process = match process::spawn(binary, &launch, log) {
            Ok(process) => process,
            Err(error) => {
                tracing::warn!(binary = %binary.display(), %error, "cannot start run-image binary");
                self.set_log_state(restarts, false);
                return Attempt::Terminated(json!({
                    "exitCode": 128, "reason": "StartError", "message": error.to_string(),
                    "startedAt": started_at, "finishedAt": now(), "containerID": self.id,
                }));
            }
        };
        tracing::info!(pod = %self.pod.name, container = %self.container, pid = process.pid(), "container started");
        self.report(
            json!({"running": {"startedAt": started_at}}),
            restarts,
            last_state,
        )
        .await;
        let outcome = tokio::select! {
            status = process.wait() => Ok(status),
            grace = stop_requested(&mut self.stop) => Err(grace),
        };
        let attempt = match outcome {
            Err(grace) => {
                process.terminate(grace).await;
                Attempt::Stopped
            }
            Ok(status) => {
                process.drain().await;
                let code = status.map_or(-1, process::exit_code);
                tracing::info!(pod = %self.pod.name, container = %self.container, code, "container exited");
                let reason = if code == 0 { "Completed" } else { "Error" };
                Attempt::Terminated(json!({
                    "exitCode": code, "reason": reason, "startedAt": started_at,
                    "finishedAt": now(), "containerID": self.id,
                }))
            }
        };
        self.set_log_state(restarts, false);
        attempt
    }

    /// Waits `delay`; false when the pod was stopped meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = stop_requested(&mut self.stop) => false,
        }
    }

    /// This container's spec in `pod`.
    fn spec(&self, pod: &Value) -> Value {
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == self.container.as_str())
            .cloned()
            .unwrap_or_default()
    }

    /// The pod as the API server has it now; `None` when it was deleted, replaced or is being deleted.
    async fn current_pod(&self) -> Result<Option<Value>, ConfigError> {
        let api: Api<Pod> = Api::namespaced(self.kubelet.client.clone(), &self.pod.namespace);
        let Some(pod) = api
            .get_opt(&self.pod.name)
            .await
            .map_err(ConfigError::api)?
        else {
            return Ok(None);
        };
        if pod.uid().as_deref() != Some(self.pod.uid.as_str())
            || pod.metadata.deletion_timestamp.is_some()
        {
            return Ok(None);
        }
        serde_json::to_value(pod)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// Records this container's state and writes the pod's whole status.
    async fn report(&self, state: Value, restarts: u32, last_state: &Value) {
        let ready = state["running"].is_object() && self.ready_when_running;
        {
            let mut containers = self
                .status
                .containers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let spec = json!({"name": self.container, "image": containers[self.index]["image"]});
            containers[self.index] =
                container_status(&spec, &self.id, state, ready, restarts, last_state.clone());
        }
        let _write = self.status.write.lock().await;
        let api: Api<Pod> = Api::namespaced(self.kubelet.client.clone(), &self.pod.namespace);
        let mut delay = Duration::from_millis(100);
        // A lost write could leave the pod unready for good (the next report may never come), so passing
        // errors are retried until the pod is gone or being stopped.
        while self.stop.borrow().is_none() {
            let status = self.status.render("127.0.0.1");
            let patch = json!({"metadata": {"uid": self.pod.uid}, "status": status});
            let params = PatchParams::default();
            match api
                .patch_status(&self.pod.name, &params, &Patch::Merge(patch))
                .await
            {
                Ok(_) => return,
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => return,
                Err(error) => {
                    tracing::warn!(pod = %self.pod.name, %error, "pod status not written; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Resolves with the grace period once a stop is requested; at once (no grace) when the kubelet is gone.
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(grace) => grace.unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

/// Written into a simulated container's directory, it ends that container with the exit code it holds.
const EXIT_FILE: &str = "exit";

/// What a test can do to a container from outside, through the cluster's state directory: write lines to its
/// log (as the container would print them) and end a simulated container with an exit code (as a crash would).
pub struct ContainerControl {
    dir: PathBuf,
}

impl ContainerControl {
    /// The container of the newest pod `namespace/pod` (by its directory) in the cluster at `state_dir`.
    pub fn locate(
        state_dir: &Path,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> std::io::Result<Self> {
        let prefix = format!("{namespace}_{pod}_");
        let newest = std::fs::read_dir(state_dir.join("pods"))?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
            .map(|(_, path)| path)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no pod {namespace}/{pod} runs in {}", state_dir.display()),
                )
            })?;
        Ok(Self {
            dir: newest.join("containers").join(container),
        })
    }

    /// Which start of the container is the current one (0 for the first, the restart count after that).
    pub fn current_start(&self) -> std::io::Result<u32> {
        std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".log")?.parse::<u32>().ok()
            })
            .max()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} has no log yet (not started)", self.dir.display()),
                )
            })
    }

    /// The log file of the current start.
    fn current_log(&self) -> std::io::Result<PathBuf> {
        Ok(logs::file(&self.dir, self.current_start()?))
    }

    /// Appends `text` to the container's stdout log.
    pub fn append_log(&self, text: &str) -> std::io::Result<()> {
        logs::append(&self.current_log()?, logs::Stream::Stdout, text)
    }

    /// Ends a simulated container with `code`; it restarts per its pod's `restartPolicy`.
    pub fn exit(&self, code: i32) -> std::io::Result<()> {
        // Renamed into place, so the simulator never reads a half-written code.
        let staging = self.dir.join(format!(".{EXIT_FILE}.partial"));
        std::fs::write(&staging, code.to_string())?;
        std::fs::rename(staging, self.dir.join(EXIT_FILE))
    }
}
