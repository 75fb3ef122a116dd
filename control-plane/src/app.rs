//! Wires the control plane together: database, ClickHouse, CA, the agent gRPC service and the REST API.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::agents::handshakes::{self, HANDSHAKE_NICE, HandshakeLimits};
use crate::agents::{AgentGrpc, AgentSettings, Dispatcher};
use crate::api::{self, ApiState};
use crate::config::{Config, ConfigError, ConsoleConfig};
use crate::crypto::{API_TOKEN_PREFIX, CryptoError, OneTimeSecret, SecretBox, sha256_hex};
use crate::logs::{LogSink, LogStore, LogStoreError, SinkSettings};
use crate::metrics::Metrics;
use crate::pki::{AgentCa, PkiError};
use crate::provisioner::{AgentInstall, ArtifactStore, Provisioner};
use crate::runtime::DedicatedRuntime;
use crate::signing::TaskSigner;
use crate::store::{Store, StoreError};
use crate::supervisor::{Supervisor, SupervisorSettings};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("encryption key: {0}")]
    Key(#[from] CryptoError),
    #[error("PostgreSQL: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Logs(#[from] LogStoreError),
    #[error("agent CA: {0}")]
    Pki(#[from] PkiError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("image templates: {0}")]
    Templates(#[from] crate::templates::TemplateError),
    #[error("cannot start the {what} threads: {source}")]
    Threads {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("agent service TLS: {0}")]
    Tls(#[from] tonic::transport::Error),
    #[error("console.admin_password_file {path}: {reason}")]
    AdminPassword {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// A started control plane: its bound addresses and the future that serves until shutdown.
pub struct Running {
    pub api_addr: SocketAddr,
    pub agent_addr: SocketAddr,
    pub serve: std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
}

pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    let config = Arc::new(config);
    let sbox = SecretBox::from_base64_key(&config.encryption_key_base64()?)?;
    let stale_after = Duration::from_secs(3 * u64::from(config.agents.heartbeat_interval_seconds));
    let store = Store::connect(
        &config.database_url,
        config.database_max_connections,
        stale_after,
    )
    .await?;
    store.migrate().await?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    // The REST API (and the console) on threads of their own: on the main runtime its requests queued behind
    // the tasks of thousands of streams being set up after a replica restart.
    let api_runtime =
        DedicatedRuntime::new("api", threads, 0).map_err(|source| StartError::Threads {
            what: "API",
            source,
        })?;
    // Connected from the API's runtime, so its connections' sockets are that runtime's to poll.
    let api_store = {
        let url = config.database_url.clone();
        let connections = config.database_api_connections;
        api_runtime
            .handle()
            .spawn(async move { Store::connect(&url, connections, stale_after).await })
            .await
            .unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()))?
    };
    let logs = LogStore::new(&config.clickhouse)?;
    logs.ensure_schema().await?;
    let ca = Arc::new(AgentCa::load_or_create(&store, &sbox).await?);
    let signer = Arc::new(TaskSigner::load(
        config
            .task_signing
            .as_ref()
            .expect("validated: task_signing is set"),
    )?);
    tracing::info!(key_id = signer.key_id(), "tasks are signed");
    ensure_admin_token(&store, config.admin_token.as_deref()).await?;
    ensure_admin_user(&store, &config.console).await?;
    if let Some(dir) = &config.templates_dir {
        let rejected = crate::templates::load_all(&store, dir).await?;
        if !rejected.is_empty() {
            tracing::warn!(
                rejected = rejected.len(),
                "some image templates were rejected; see the errors above"
            );
        }
    }

    let metrics = Metrics::new();
    let mut supervisor = Supervisor::new(SupervisorSettings::default(), metrics.clone());
    let dispatcher = Arc::new(Dispatcher::default());
    {
        let (dispatcher, store) = (dispatcher.clone(), store.clone());
        supervisor.spawn("dispatcher", move || dispatcher.clone().run(store.clone()));
    }
    {
        let (dispatcher, store) = (dispatcher.clone(), store.clone());
        let interval = Duration::from_secs(u64::from(config.agents.heartbeat_interval_seconds));
        supervisor.spawn("dispatcher patrol", move || {
            dispatcher.clone().patrol(store.clone(), interval)
        });
    }
    {
        let store = store.clone();
        let interval = Duration::from_millis(config.tasks.poll_interval_ms);
        supervisor.spawn("housekeeping", move || {
            housekeeping(store.clone(), interval)
        });
    }
    {
        let store = store.clone();
        let every = config.lease_duration() / 3;
        supervisor.spawn("lease expiry", move || expire_leases(store.clone(), every));
    }
    {
        let store = store.clone();
        let keep = chrono::TimeDelta::days(i64::from(config.tasks.retention_days));
        supervisor.spawn("task_retention", move || {
            prune_finished_tasks(store.clone(), keep)
        });
    }
    let sink = LogSink::start(logs.clone(), SinkSettings::default(), metrics.clone());
    let demo_sink = LogSink::start(logs.clone(), SinkSettings::default(), metrics.clone());
    {
        let (store, logs, metrics) = (store.clone(), logs.clone(), metrics.clone());
        supervisor.spawn("log_outbox", move || {
            crate::logs::outbox::run(store.clone(), logs.clone(), metrics.clone())
        });
    }
    {
        let (logs, retention) = (logs.clone(), config.clickhouse.retention);
        supervisor.spawn("log_retention", move || {
            crate::logs::retention::run(logs.clone(), retention)
        });
    }
    let planner = Arc::new(crate::planner::Planner {
        store: store.clone(),
        config: config.clone(),
        signer: signer.clone(),
        poll_interval: Duration::from_millis(config.tasks.poll_interval_ms.min(1000)),
    });
    supervisor.spawn("planner", move || planner.clone().run());
    let sampler = Arc::new(crate::fleet::sampler::Sampler {
        store: store.clone(),
        logs: logs.clone(),
        interval: Duration::from_secs(config.console.sample_interval_seconds.into()),
        retention: Duration::from_secs(u64::from(config.console.sample_retention_hours) * 3600),
    });
    supervisor.spawn("fleet_sampler", move || {
        let sampler = sampler.clone();
        async move { sampler.run().await }
    });
    if let Some(provisioning) = &config.provisioning {
        let provisioner = Provisioner {
            store: store.clone(),
            sbox: sbox.clone(),
            ca: ca.clone(),
            artifacts: ArtifactStore::new(&provisioning.state),
            config: provisioning.clone(),
            agent: AgentInstall {
                endpoint: config.agent_endpoint.clone(),
                image: config.agents.image.clone(),
                token_ttl: Duration::from_secs(config.agents.bootstrap_token_ttl_seconds),
            },
            lease: config.lease_duration(),
            poll_interval: Duration::from_millis(config.tasks.poll_interval_ms),
            metrics: metrics.clone(),
        };
        let provisioner = Arc::new(provisioner);
        supervisor.spawn("provisioner", move || provisioner.clone().run());
    }

    let grpc = AgentGrpc::new(
        store.clone(),
        ca.clone(),
        dispatcher.clone(),
        sink,
        demo_sink,
        metrics.clone(),
        AgentSettings {
            certificate_ttl: Duration::from_secs(config.agents.certificate_ttl_seconds),
            renewal_overlap: Duration::from_secs(config.agents.renewal_overlap_seconds),
            recovery_grace: Duration::from_secs(config.agents.recovery_grace_seconds),
            heartbeat_interval: Duration::from_secs(u64::from(
                config.agents.heartbeat_interval_seconds,
            )),
            lease: config.lease_duration(),
            hello_timeout: Duration::from_secs(10),
            instance: config.instance_name.clone(),
            task_keys: signer.key_set().clone(),
            // Half the agents' connections, so set-ups never take every one from the running streams.
            concurrent_setups: (config.database_max_connections as usize / 2).max(1),
        },
    );
    let tls = grpc.tls_config(&config.agent_tls_names)?;
    let agent_listener = bind(config.agent_listen, AGENT_LISTEN_BACKLOG)?;
    let agent_addr = agent_listener
        .local_addr()
        .map_err(|source| StartError::Listen {
            addr: config.agent_listen,
            source,
        })?;
    let api_listener = {
        let _api_runtime = api_runtime.handle().enter();
        bind(config.api_listen, API_LISTEN_BACKLOG)?
    };
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| StartError::Listen {
            addr: config.api_listen,
            source,
        })?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        // Agent streams never end on their own: end them so the gRPC server can finish its graceful stop.
        dispatcher.shut_down();
        let _ = stop_tx.send(true);
    });
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let handshake_runtime = DedicatedRuntime::new("agent-handshake", threads, HANDSHAKE_NICE)
        .map_err(|source| StartError::Threads {
            what: "agent handshake",
            source,
        })?;
    let agent_connections = handshakes::incoming(
        agent_listener,
        Arc::new(tls),
        HandshakeLimits {
            max_in_progress: config.agents.max_concurrent_handshakes,
            timeout: Duration::from_secs(config.agents.handshake_timeout_seconds),
        },
        metrics.clone(),
        handshake_runtime.handle(),
    );
    let grpc_server = tonic::transport::Server::builder()
        // Detects agents that vanished without closing their connection (e.g. a killed node).
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(grpc.into_server())
        .serve_with_incoming_shutdown(agent_connections, wait_stop(stop_rx.clone()));

    let closing_store = store.clone();
    let router = api::router(ApiState {
        store: api_store,
        logs,
        sbox,
        ca,
        config: config.clone(),
        signer,
        metrics,
        loops: supervisor.health(),
        failing_loop_after: supervisor.settings().failing_after,
    });
    let api_server = api_runtime.handle().spawn(
        axum::serve(
            api_listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(wait_stop(stop_rx))
        .into_future(),
    );

    tracing::info!(instance = %config.instance_name, %api_addr, %agent_addr, agent_endpoint = %config.agent_endpoint, "control plane started");
    let serve = Box::pin(async move {
        let (grpc_result, api_result) = tokio::join!(grpc_server, api_server);
        match closing_store
            .close_instance_sessions(&config.instance_name)
            .await
        {
            Ok(closed) => tracing::info!(
                sessions = closed,
                "recorded the end of this process's agent sessions"
            ),
            Err(error) => tracing::warn!(%error, "could not record the end of agent sessions"),
        }
        supervisor.shut_down().await;
        drop(handshake_runtime);
        drop(api_runtime);
        grpc_result.map_err(|e| format!("agent service: {e}"))?;
        api_result
            .unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()))
            .map_err(|e| format!("API: {e}"))?;
        Ok(())
    });
    Ok(Running {
        api_addr,
        agent_addr,
        serve,
    })
}

/// Connections the kernel queues for the REST API before they are accepted (tokio's default).
const API_LISTEN_BACKLOG: u32 = 1024;
/// Connections the kernel queues on the agent port. Handshakes are let in a few at a time, so after a replica
/// restart thousands of agents wait here; when the queue is full their SYNs are dropped and each retries only
/// after the kernel's doubling SYN timeouts (1, 3, 7, 15, 31, 63 s), which made a reconnect storm's last agents
/// take minutes. The kernel caps it at `net.core.somaxconn` (4096 by default).
const AGENT_LISTEN_BACKLOG: u32 = 16384;

/// Must run inside a runtime: the listener registers with that runtime's I/O driver.
fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener, StartError> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(backlog)
    };
    listen().map_err(|source| StartError::Listen { addr, source })
}

/// Registers the configured admin token, or on a fresh database prints a generated one exactly once.
async fn ensure_admin_token(store: &Store, configured: Option<&str>) -> Result<(), StartError> {
    if let Some(token) = configured {
        store
            .insert_api_token("admin", &sha256_hex(token), "admin")
            .await?;
        return Ok(());
    }
    if store.api_token_count().await? == 0 {
        let token = OneTimeSecret::generate(API_TOKEN_PREFIX);
        store
            .insert_api_token("admin", &token.digest(), "admin")
            .await?;
        // Printed to stdout, not to the log: this is the only time it can be seen.
        println!(
            "initial admin API token (shown once, store it now): {}",
            token.expose()
        );
    }
    Ok(())
}

/// On a database without users, creates the console admin: with the password from `admin_password_file`, or a
/// generated one printed once.
async fn ensure_admin_user(store: &Store, console: &ConsoleConfig) -> Result<(), StartError> {
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match &console.admin_password_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| StartError::AdminPassword {
                    path: path.clone(),
                    reason: source.to_string(),
                })?;
            let password = text.trim().to_owned();
            if password.chars().count() < crate::api::MIN_PASSWORD_CHARS {
                return Err(StartError::AdminPassword {
                    path: path.clone(),
                    reason: format!(
                        "the password must be at least {} characters",
                        crate::api::MIN_PASSWORD_CHARS
                    ),
                });
            }
            (password, false)
        }
        None => (OneTimeSecret::generate("").expose().to_owned(), true),
    };
    let (hash, password) = tokio::task::spawn_blocking(move || {
        crate::crypto::hash_password(&password).map(|hash| (hash, password))
    })
    .await
    .expect("hashing does not panic")?;
    store
        .insert_user(&console.admin_username, &hash, "admin")
        .await?;
    if generated {
        // Printed to stdout, not to the log: this is the only time it can be seen.
        println!(
            "initial console admin {:?}, password (shown once, change it after signing in): {password}",
            console.admin_username
        );
    } else {
        tracing::info!(username = %console.admin_username, "console admin created with the configured password");
    }
    Ok(())
}

/// Deletes finished tasks older than `keep` every few minutes, a bounded batch per statement so that a large
/// backlog (the first run after an upgrade, a lowered retention) never holds one long transaction.
async fn prune_finished_tasks(store: Store, keep: chrono::TimeDelta) {
    const EVERY: Duration = Duration::from_secs(300);
    const BATCH: i64 = 1000;
    loop {
        let before = chrono::Utc::now() - keep;
        let mut deleted = 0;
        loop {
            match store.prune_finished_tasks(before, BATCH).await {
                Ok(rows) => {
                    deleted += rows;
                    if rows < BATCH as u64 {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "could not delete finished tasks past retention; retrying later");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(
                tasks = deleted,
                days = keep.num_days(),
                "deleted finished tasks past retention"
            );
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Returns tasks with expired leases to the queue (or fails them), every `every` (a third of a lease, so a
/// lease is taken back at most a third of its length late). Not at the poll interval: the scan reads every held
/// task's queue row, and while a long transaction elsewhere keeps old row versions alive it reads every
/// version since, so its cost grows with that transaction's age. Idempotent, so every process runs it.
async fn expire_leases(store: Store, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.expire_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tasks = n, "expired task leases returned to the queue"),
            Err(error) => tracing::warn!(%error, "could not expire task leases"),
        }
    }
}

/// Periodically closes sessions of vanished processes and forgets old sign-in counters; both idempotent, so
/// every process runs them.
async fn housekeeping(store: Store, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = store.close_stale_sessions().await {
            tracing::warn!(%error, "could not close stale agent sessions");
        }
        if let Err(error) = store
            .prune_sign_in_throttle(crate::api::SIGN_IN_WINDOW)
            .await
        {
            tracing::warn!(%error, "could not prune sign-in counters");
        }
    }
}
