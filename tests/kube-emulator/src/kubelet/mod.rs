//! A minimal kubelet for images the test harness maps to local binaries (`--run-image`): each such container
//! runs as a supervised host process with restarts and backoff; plus the container and pod status shapes
//! shared with the simulated kubelet of the controllers.

mod launch;
mod objects;
mod process;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::Api;
use crate::controllers::{Settings, status_write};
use crate::error::{ApiError, RunImageError, StartError};
use crate::logs::LogStore;
use crate::meta;
use crate::resources::ResourceInfo;
use objects::{Objects, Source};

/// Containers whose image starts with `prefix` run as processes of `binary` on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunImage {
    pub prefix: String,
    pub binary: PathBuf,
}

impl FromStr for RunImage {
    type Err = RunImageError;

    /// Parses `IMAGE_PREFIX=PATH` (the image prefix cannot contain `=`, the path can).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((prefix, binary)) if !prefix.is_empty() && !binary.is_empty() => Ok(Self {
                prefix: prefix.to_string(),
                binary: PathBuf::from(binary),
            }),
            _ => Err(RunImageError(text.to_string())),
        }
    }
}

/// Why a run container cannot be started (yet); shown in its `waiting` state and retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{} \"{name}\" not found", object.resource())]
    NotFound { object: Source, name: String },
    #[error("couldn't find key {key} in {} {namespace}/{name}", object.kind())]
    MissingKey {
        object: Source,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("{0} is not supported by kube-emulator's process runner")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    Mount {
        volume: String,
        source: Box<ConfigError>,
    },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The waiting reason a real kubelet shows: volume problems keep a container in `ContainerCreating`.
    fn reason(&self) -> &'static str {
        match self {
            Self::Mount { .. } | Self::Io { .. } => "ContainerCreating",
            _ => "CreateContainerConfigError",
        }
    }
}

/// Restart delays double from `restart_backoff` up to this multiple of it (the kubelet's 10 s to 5 min).
const BACKOFF_CAP_FACTOR: u32 = 30;
/// Grace period when the pod spec has none (the API default).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// `containerID` of a container status.
pub fn container_id(pod_uid: &str, index: usize) -> String {
    format!("containerd://{pod_uid}-{index}")
}

/// One entry of `status.containerStatuses`; `state` is `{"running"|"waiting"|"terminated": {...}}`.
pub fn container_status(
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

/// Derives `phase` and the pod conditions from `status.containerStatuses`: finished when every container has
/// terminated for good (Succeeded when all exited 0), ready when every container is.
pub fn refresh_pod_status(status: &mut Value) {
    let containers = status["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let finished = !containers.is_empty()
        && containers
            .iter()
            .all(|c| c["state"]["terminated"].is_object());
    let phase = if !finished {
        "Running"
    } else if containers
        .iter()
        .all(|c| c["state"]["terminated"]["exitCode"] == 0)
    {
        "Succeeded"
    } else {
        "Failed"
    };
    status["phase"] = json!(phase);
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| c["ready"] != Value::Bool(true))
        .filter_map(|c| c["name"].as_str())
        .collect();
    let conditions = &mut status["conditions"];
    let started = if finished { "False" } else { "True" };
    meta::set_condition(
        conditions,
        "PodReadyToStartContainers",
        started,
        "",
        "",
        false,
    );
    meta::set_condition(conditions, "Initialized", "True", "", "", false);
    let (state, reason, message) = if unready.is_empty() {
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
    meta::set_condition(conditions, "Ready", state, reason, &message, false);
    meta::set_condition(
        conditions,
        "ContainersReady",
        state,
        reason,
        &message,
        false,
    );
    meta::set_condition(conditions, "PodScheduled", "True", "", "", false);
}

/// What every supervisor needs; deliberately not the [`Kubelet`] itself, so that dropping the kubelet
/// (which aborts the supervisors) is never delayed by a supervisor holding it.
struct Context {
    api: Arc<Api>,
    objects: Objects,
    logs: Arc<LogStore>,
    pods: Arc<ResourceInfo>,
    restart_backoff: Duration,
    kubeconfig: PathBuf,
}

/// A pod by identity: a re-created pod of the same name has another uid and is not it.
struct PodRef {
    namespace: String,
    name: String,
    uid: String,
    /// `<kubelet dir>/pods/<namespace>_<name>_<uid>`.
    dir: PathBuf,
}

impl PodRef {
    /// The pod as stored now, if it is still this one (deleting or not).
    fn current(&self, context: &Context) -> Option<Value> {
        let pod = context
            .api
            .get(&context.pods, &self.namespace, &self.name)
            .ok()?;
        (meta::uid(&pod) == self.uid).then_some(pod)
    }
}

/// A pod whose run containers are supervised.
struct PodRun {
    pod: Arc<PodRef>,
    /// Set to `Some(grace)` to stop the supervisors; dropping it stops them at once.
    stop: watch::Sender<Option<Duration>>,
    grace: Duration,
    tasks: Vec<JoinHandle<()>>,
}

/// Runs the containers of pods whose image matches a run image.
pub struct Kubelet {
    context: Arc<Context>,
    images: Vec<RunImage>,
    /// Holds the kubeconfig and the pod directories; removed with the kubelet.
    dir: tempfile::TempDir,
    pods: Mutex<HashMap<String, PodRun>>,
}

impl Kubelet {
    /// Checks the run-image binaries and writes the kubeconfig processes get into a fresh directory.
    pub fn new(
        api: Arc<Api>,
        logs: Arc<LogStore>,
        settings: &Settings,
        kubeconfig: &str,
    ) -> Result<Self, StartError> {
        let mut images = Vec::new();
        for image in &settings.run_images {
            let invalid = |reason: String| StartError::RunImage {
                prefix: image.prefix.clone(),
                binary: image.binary.clone(),
                reason,
            };
            // Absolute, because each process starts in its own working directory.
            let binary = std::path::absolute(&image.binary).map_err(|e| invalid(e.to_string()))?;
            let metadata = std::fs::metadata(&binary).map_err(|e| invalid(e.to_string()))?;
            if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
                return Err(invalid("not an executable file".into()));
            }
            images.push(RunImage {
                prefix: image.prefix.clone(),
                binary,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("kube-emulator-kubelet-")
            .tempdir()
            .map_err(|source| StartError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let kubeconfig_path = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig_path, kubeconfig).map_err(|source| StartError::Write {
            path: kubeconfig_path.clone(),
            source,
        })?;
        tracing::info!(dir = %dir.path().display(), "kubelet runs mapped images as local processes");
        let pods = api.resource("", "v1", "pods").expect("built-in kind");
        Ok(Self {
            context: Arc::new(Context {
                objects: Objects::new(api.clone()),
                api,
                logs,
                pods,
                restart_backoff: settings.restart_backoff,
                kubeconfig: kubeconfig_path,
            }),
            images,
            dir,
            pods: Mutex::new(HashMap::new()),
        })
    }

    /// The binary for `image`: the longest matching prefix wins.
    pub fn binary_for(&self, image: &str) -> Option<&Path> {
        self.images
            .iter()
            .filter(|i| image.starts_with(&i.prefix))
            .max_by_key(|i| i.prefix.len())
            .map(|i| i.binary.as_path())
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodRun>> {
        // The map stays consistent even if a holder panicked (single inserts and removals).
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts supervising the run containers of a pod that was just bound and started (once per pod uid).
    pub fn launch(&self, pod: &Value, never_ready: bool) {
        let uid = meta::uid(pod).to_string();
        let mut pods = self.pods();
        if pods.contains_key(&uid) {
            return;
        }
        let (namespace, name) = (meta::namespace(pod), meta::name(pod));
        let pod_ref = Arc::new(PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.clone(),
            dir: self
                .dir
                .path()
                .join("pods")
                .join(format!("{namespace}_{name}_{uid}")),
        });
        let (stop, _) = watch::channel(None);
        // Serializes volume writes of the pod's containers, which may share volumes.
        let volumes_lock = Arc::new(Mutex::new(()));
        let mut tasks = Vec::new();
        let containers = pod["spec"]["containers"].as_array().into_iter().flatten();
        for (index, container) in containers.enumerate() {
            let image = container["image"].as_str().unwrap_or_default();
            let Some(binary) = self.binary_for(image) else {
                continue;
            };
            let supervisor = Supervisor {
                context: self.context.clone(),
                pod: pod_ref.clone(),
                container: container["name"].as_str().unwrap_or_default().to_string(),
                id: container_id(&uid, index),
                binary: binary.to_path_buf(),
                ready_when_running: !never_ready,
                volumes_lock: volumes_lock.clone(),
                stop: stop.subscribe(),
            };
            tasks.push(tokio::spawn(supervisor.run()));
        }
        let grace = pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .map_or(DEFAULT_GRACE, Duration::from_secs);
        pods.insert(
            uid,
            PodRun {
                pod: pod_ref,
                stop,
                grace,
                tasks,
            },
        );
    }

    /// Stops the processes of every pod not in `live` (deleted, or being deleted) with its grace period and
    /// removes its directory once they are gone.
    pub fn retain(&self, live: &HashSet<&str>) {
        let gone: Vec<String> = self
            .pods()
            .keys()
            .filter(|uid| !live.contains(uid.as_str()))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(run) = self.pods().remove(&uid) {
                tokio::spawn(stop(run, self.context.clone()));
            }
        }
    }

    /// Stops every process with its pod's grace period and waits until all are gone.
    pub async fn shutdown(&self) {
        let runs: Vec<PodRun> = self.pods().drain().map(|(_, run)| run).collect();
        let stops = runs.into_iter().map(|run| stop(run, self.context.clone()));
        futures::future::join_all(stops).await;
    }
}

/// Stops one pod's supervisors and removes its directory after they have finished.
async fn stop(run: PodRun, context: Arc<Context>) {
    let _ = run.stop.send(Some(run.grace));
    for task in run.tasks {
        let _ = task.await;
    }
    // The last lines of a deleted pod may have arrived after the log store forgot it; a pod that still exists
    // (deleting, held by finalizers) keeps its log until the store deletes it.
    if run.pod.current(&context).is_none() {
        context.logs.forget(&run.pod.uid);
    }
    if let Err(error) = std::fs::remove_dir_all(&run.pod.dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %run.pod.dir.display(), %error, "cannot remove pod directory");
    }
}

impl Drop for Kubelet {
    /// Aborting a supervisor drops its process, which kills the process group at once.
    fn drop(&mut self) {
        for (_, run) in self.pods().drain() {
            run.tasks.iter().for_each(JoinHandle::abort);
        }
    }
}

/// Runs one container: start, report, wait, restart with backoff per `restartPolicy`, until stopped.
struct Supervisor {
    context: Arc<Context>,
    pod: Arc<PodRef>,
    container: String,
    id: String,
    binary: PathBuf,
    /// False for images with the never-ready marker.
    ready_when_running: bool,
    volumes_lock: Arc<Mutex<()>>,
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
        let initial = self.context.restart_backoff;
        let cap = initial * BACKOFF_CAP_FACTOR;
        let mut backoff = initial;
        let mut restarts: u32 = 0;
        let mut last_state = json!({});
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
            let Some(policy) = self
                .current_pod()
                .map(|pod| pod["spec"]["restartPolicy"].clone())
            else {
                return;
            };
            let failed = terminated["exitCode"] != 0;
            let restart = match policy.as_str() {
                Some("Never") => false,
                Some("OnFailure") => failed,
                _ => true,
            };
            if !restart {
                self.report(json!({"terminated": terminated}), restarts, &last_state);
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
            );
            if !self.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(cap);
            restarts += 1;
        }
    }

    /// One try at creating and running the container, reporting its state on the way.
    async fn attempt(&mut self, restarts: u32, last_state: &Value) -> Attempt {
        let Some(pod) = self.current_pod() else {
            return Attempt::Stopped;
        };
        let container = self.spec(&pod);
        let paths = launch::Paths {
            pod_dir: &self.pod.dir,
            kubeconfig: &self.context.kubeconfig,
        };
        let prepared = {
            let _volumes = self.volumes_lock.lock().unwrap_or_else(|e| e.into_inner());
            launch::prepare(&self.context.objects, &pod, &container, &paths)
        };
        let launch = match prepared {
            Ok(launch) => launch,
            Err(error) => {
                tracing::info!(pod = %self.pod.name, container = %self.container, %error, "container not created");
                let reason = error.reason();
                let waiting = json!({"waiting": {"reason": reason, "message": error.to_string()}});
                self.report(waiting, restarts, last_state);
                return Attempt::NotCreated;
            }
        };
        let started_at = meta::now();
        let log = process::LogTarget {
            logs: self.context.logs.clone(),
            pod_uid: self.pod.uid.clone(),
            container: self.container.clone(),
        };
        let mut process = match process::spawn(&self.binary, &launch, log) {
            Ok(process) => process,
            Err(error) => {
                tracing::warn!(binary = %self.binary.display(), %error, "cannot start run-image binary");
                return Attempt::Terminated(json!({
                    "exitCode": 128, "reason": "StartError", "message": error.to_string(),
                    "startedAt": started_at, "finishedAt": meta::now(), "containerID": self.id,
                }));
            }
        };
        tracing::info!(pod = %self.pod.name, container = %self.container, pid = process.pid(), "container started");
        let running = json!({"running": {"startedAt": started_at}});
        self.report(running, restarts, last_state);
        let outcome = tokio::select! {
            status = process.wait() => Ok(status),
            grace = stop_requested(&mut self.stop) => Err(grace),
        };
        match outcome {
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
                    "finishedAt": meta::now(), "containerID": self.id,
                }))
            }
        }
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

    /// The pod as stored now, unless it was replaced or is being deleted.
    fn current_pod(&self) -> Option<Value> {
        self.pod
            .current(&self.context)
            .filter(|pod| !meta::is_deleting(pod))
    }

    /// Writes this container's status (and the derived pod phase and conditions).
    fn report(&self, state: Value, restarts: u32, last_state: &Value) {
        let ready = state["running"].is_object() && self.ready_when_running;
        let result = self.context.api.update_with(
            &self.context.pods,
            &self.pod.namespace,
            &self.pod.name,
            status_write("kubelet"),
            |pod| {
                if meta::uid(pod) != self.pod.uid {
                    return Err(ApiError::not_found(&self.context.pods, &self.pod.name));
                }
                let mut pod = pod.clone();
                let spec = self.spec(&pod);
                let entry =
                    container_status(&spec, &self.id, state, ready, restarts, last_state.clone());
                let statuses = &mut pod["status"]["containerStatuses"];
                if !statuses.is_array() {
                    *statuses = json!([]);
                }
                let list = statuses.as_array_mut().expect("just made an array");
                match list
                    .iter_mut()
                    .find(|s| s["name"] == self.container.as_str())
                {
                    Some(existing) => *existing = entry,
                    None => list.push(entry),
                }
                refresh_pod_status(&mut pod["status"]);
                Ok(pod)
            },
        );
        if let Err(error) = result {
            tracing::debug!(pod = %self.pod.name, %error, "container status not written");
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
