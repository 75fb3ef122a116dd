//! Wires the agent together: credentials (bootstrapping when needed), renewal, the cluster probe, the demo pod log
//! followers and the session.

use std::convert::Infallible;
use std::sync::Arc;

use chrono::Utc;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, error, info, info_span, warn};

use crate::apply::Applier;
use crate::cluster;
use crate::config::Settings;
use crate::desired::{self, DesiredState};
use crate::identity::{self, CredentialStore, Credentials, EnrolError, StoreError};
use crate::logbuffer::{DiskQueueError, LogBuffer, LogSettings, Recovered, WhenFull};
use crate::ownlog::{self, OwnLogLines};
use crate::podlogs;
use crate::podlogs::configured::ConfiguredSelection;
use crate::podlogs::positions::{PositionsError, SharedPositions};
use crate::session::{Backoff, DEFAULT_HEARTBEAT, LogBuffers, Session};
use crate::transport;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Enrol(#[from] EnrolError),
    #[error(transparent)]
    LogBuffer(#[from] DiskQueueError),
    #[error(transparent)]
    LogPositions(#[from] PositionsError),
}

/// Runs the agent until the process is stopped; returns only when it cannot start. `own_log` (from the binary's
/// tracing setup) ships the agent's own log with its pods' logs.
pub async fn run(
    settings: Settings,
    client: kube::Client,
    own_log: Option<OwnLogLines>,
) -> Result<Infallible, AgentError> {
    transport::install_crypto_provider();
    let buffers = open_log_buffers(&settings.logs)?;
    let store = CredentialStore::new(&settings.state, client.clone());
    let credentials = ensure_credentials(&settings, &store).await?;
    info!(
        cluster = credentials.cluster_id(),
        control_plane = %settings.control_plane.url,
        cert_expiry = %credentials.not_after(),
        store = %store,
        "node agent {} starting",
        crate::AGENT_VERSION
    );

    let (credentials_sender, credentials) = watch::channel(credentials);
    tokio::spawn(identity::renewal_loop(
        settings.control_plane.clone(),
        settings.install_ca_pem.clone(),
        store,
        settings.renew_check_interval,
        credentials_sender,
    ));
    let cluster = cluster::spawn_prober(
        client.clone(),
        settings.heartbeat_override.unwrap_or(DEFAULT_HEARTBEAT),
    );
    let (pod_log_sender, pod_log_lines) = mpsc::channel(podlogs::LINE_QUEUE);
    if let Some(own_log) = own_log {
        tokio::spawn(ownlog::forward(own_log, pod_log_sender.clone()));
    }
    tokio::spawn(podlogs::run(
        client.clone(),
        pod_log_sender,
        buffers.positions.clone(),
        buffers.selection.subscribe(),
    ));
    let applier = Arc::new(Applier::new(client, settings.policy.clone()));
    let desired = Arc::new(DesiredState::load(
        &settings.logs.buffer_dir.join("desired-state.json"),
    ));
    let session = Session::new(
        &settings,
        credentials,
        cluster,
        applier.clone(),
        desired.clone(),
        pod_log_lines,
        buffers,
    );
    tokio::spawn(desired::offline::keep_while_offline(
        applier,
        desired,
        session.online(),
        settings.offline_check_interval,
        session.offline_reporter(),
        session.offline_journal(),
    ));
    Ok(session.run().await)
}

/// Opens the task and pod log buffers under `settings.buffer_dir`, saying what an earlier run left in them.
fn open_log_buffers(settings: &LogSettings) -> Result<LogBuffers, AgentError> {
    // Batch ids start above the start time in microseconds too, in case the buffer directory was emptied.
    let first_batch_id = u64::try_from(Utc::now().timestamp_micros()).unwrap_or_default();
    // The agent cannot stop writing its own log, so that buffer always makes room by dropping.
    let (task, task_recovered) =
        LogBuffer::open(settings, "task-logs", WhenFull::DropOldest, first_batch_id)?;
    let (pod, pod_recovered) =
        LogBuffer::open(settings, "pod-logs", settings.when_full, first_batch_id)?;
    let positions = SharedPositions::load(&settings.buffer_dir.join("pod-log-positions.json"))?;
    for (what, recovered) in [("task log", task_recovered), ("pod log", pod_recovered)] {
        report_recovered(what, &recovered);
    }
    Ok(LogBuffers {
        task,
        pod,
        positions,
        selection: ConfiguredSelection::load(&settings.buffer_dir.join("log-selection.pb")),
    })
}

fn report_recovered(what: &str, recovered: &Recovered) {
    if recovered.corrupt_segments_tails > 0 {
        warn!(
            buffer = what,
            segments = recovered.corrupt_segments_tails,
            "log buffer segments ended in a torn or corrupt record; those records were cut off"
        );
    }
    if recovered.batches > 0 {
        info!(
            buffer = what,
            batches = recovered.batches,
            lines = recovered.lines,
            "unacknowledged log batches from an earlier run will be sent again"
        );
    }
}

/// Uses the stored credentials while their certificate is valid; recovers an expired one with its key; otherwise
/// bootstraps with the token. Transient failures (store or control plane unreachable) are retried with backoff;
/// the rest stop the agent.
async fn ensure_credentials(
    settings: &Settings,
    store: &CredentialStore,
) -> Result<Credentials, EnrolError> {
    let mut backoff = Backoff::new(settings.backoff);
    let span = info_span!("bootstrap", store = %store, control_plane = %settings.control_plane.url);
    loop {
        match load_or_bootstrap(settings, store)
            .instrument(span.clone())
            .await
        {
            Ok(credentials) => return Ok(credentials),
            Err(err) if err.is_retryable() => {
                let delay = backoff.next_delay();
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                span.in_scope(|| warn!(error = %err, delay_ms, "enrolment failed; retrying"));
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn load_or_bootstrap(
    settings: &Settings,
    store: &CredentialStore,
) -> Result<Credentials, EnrolError> {
    let now = Utc::now();
    match store.load().await {
        Ok(Some(stored)) if stored.is_valid_at(now) => return Ok(stored),
        Ok(Some(stored)) if stored.not_after() <= now => {
            info!(
                cluster = stored.cluster_id(),
                not_after = %stored.not_after(),
                "stored certificate has expired; recovering it with its key"
            );
            match identity::recover(&settings.control_plane, &stored).await {
                Ok(recovered) => {
                    info!(not_after = %recovered.not_after(), "certificate recovered");
                    // The key is unchanged, so a restart before the next save can recover again.
                    if let Err(err) = store.save(&recovered).await {
                        error!(error = %err, "could not store the recovered credentials");
                    }
                    return Ok(recovered);
                }
                Err(err) if err.is_retryable() => return Err(err),
                Err(err) => {
                    warn!(error = %err, "the expired certificate was not recovered; bootstrapping")
                }
            }
        }
        Ok(Some(stored)) => info!(
            cluster = stored.cluster_id(),
            not_after = %stored.not_after(),
            "stored certificate is not valid; bootstrapping"
        ),
        Ok(None) => info!("no stored credentials; bootstrapping"),
        Err(err @ StoreError::Unusable { .. }) => {
            warn!(error = %err, "ignoring unusable stored credentials; bootstrapping");
        }
        Err(err) => return Err(EnrolError::Store(err)),
    }
    let token = settings
        .bootstrap_token
        .as_ref()
        .ok_or_else(|| EnrolError::NoToken {
            store: store.to_string(),
        })?;
    let install_ca = settings
        .install_ca_pem
        .as_deref()
        .ok_or_else(|| EnrolError::NoInstallCa {
            store: store.to_string(),
        })?;
    let credentials = identity::bootstrap(&settings.control_plane, install_ca, token).await?;
    info!(cluster = credentials.cluster_id(), "bootstrap succeeded");
    // The token is spent: keep running on the new certificate even if storing it fails.
    if let Err(err) = store.save(&credentials).await {
        error!(
            error = %err,
            "could not store the new credentials; \
             a restart before the next renewal will need a new bootstrap token"
        );
    }
    Ok(credentials)
}
