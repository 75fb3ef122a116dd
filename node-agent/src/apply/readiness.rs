//! Waits for applied Deployments to become available, remembering the last condition seen for the report.

use std::time::Duration;

use agent_protocol::{ObjectOutcome, ObjectResult};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use tokio::time::Instant;

use crate::error::error_chain;
use crate::tasklog::TaskLog;

// Polling (rather than a watch) keeps the wait correct across API server restarts. It starts fast, since a
// rollout of a cached image is often done in well under a second, and backs off to a read a second.
const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(1);

/// Where a Deployment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Available,
    /// Not available yet; says why, from the Deployment's status.
    Waiting(String),
}

/// Available means: the controller has seen the current spec, the `Available` condition is True and every
/// desired replica is available.
pub fn assess(deployment: &Deployment) -> Readiness {
    let generation = deployment.metadata.generation.unwrap_or_default();
    let desired = deployment.spec.replicas.unwrap_or(1);
    let Some(status) = &deployment.status else {
        return Readiness::Waiting("no status reported yet".into());
    };
    let observed = status.observed_generation.unwrap_or_default();
    if observed < generation {
        return Readiness::Waiting(format!(
            "the controller has not observed generation {generation} yet (observed {observed})"
        ));
    }
    let available_replicas = status.available_replicas.unwrap_or_default();
    let available = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|condition| condition.type_.as_deref() == Some("Available"));
    let condition_true =
        available.is_some_and(|condition| condition.status.as_deref() == Some("True"));
    if condition_true && available_replicas >= desired {
        return Readiness::Available;
    }
    let condition = match available {
        Some(condition) => format!(
            "Available={} ({}: {})",
            condition.status.as_deref().unwrap_or("Unknown"),
            condition.reason.as_deref().unwrap_or("no reason"),
            condition.message.as_deref().unwrap_or("no message")
        ),
        None => "no Available condition".into(),
    };
    Readiness::Waiting(format!(
        "{condition}, {available_replicas}/{desired} replicas available"
    ))
}

/// The outcome of waiting: one READY or NOT_READY result per Deployment, and the last state of those not ready.
pub struct WaitOutcome {
    pub results: Vec<ObjectResult>,
    pub not_ready: Vec<String>,
}

/// Polls every Deployment in `applied` until all are available or `timeout` passes; `progress` hears each one
/// as it finishes.
pub async fn wait_for_deployments(
    client: &kube::Client,
    applied: &[ObjectResult],
    timeout: Duration,
    log: &TaskLog,
    progress: &(dyn Fn(&str, Vec<ObjectResult>) + Send + Sync),
) -> WaitOutcome {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<(ObjectResult, String)> = applied
        .iter()
        .map(|object| (object.clone(), "not checked yet".to_owned()))
        .collect();
    let mut results = Vec::new();
    let mut poll = FIRST_POLL;
    loop {
        let mut still_pending = Vec::new();
        for (object, _) in pending {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &object.namespace);
            let state = match api.get_opt(&object.name).await {
                Ok(Some(deployment)) => assess(&deployment),
                Ok(None) => Readiness::Waiting("the deployment no longer exists".into()),
                Err(err) => Readiness::Waiting(format!(
                    "reading the deployment failed: {}",
                    error_chain(&err)
                )),
            };
            match state {
                Readiness::Available => {
                    let ready = ObjectResult {
                        outcome: ObjectOutcome::Ready.into(),
                        message: "deployment available".into(),
                        ..object
                    };
                    log.info(
                        format!("deployment {}/{} is available", ready.namespace, ready.name),
                        &[
                            ("document_index", ready.document_index.to_string()),
                            ("outcome", "READY".into()),
                        ],
                    );
                    progress("deployment available", vec![ready.clone()]);
                    results.push(ready);
                }
                Readiness::Waiting(why) => still_pending.push((object, why)),
            }
        }
        pending = still_pending;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(poll.min(deadline - Instant::now())).await;
        poll = (poll * 2).min(MAX_POLL);
    }

    let mut not_ready = Vec::new();
    for (object, why) in pending {
        let description = format!("deployment {}/{}: {why}", object.namespace, object.name);
        log.error(
            format!(
                "deployment {}/{} did not become available within {timeout:?}",
                object.namespace, object.name
            ),
            &[
                ("document_index", object.document_index.to_string()),
                ("outcome", "NOT_READY".into()),
                ("last_state", why.clone()),
            ],
        );
        let result = ObjectResult {
            outcome: ObjectOutcome::NotReady.into(),
            message: why,
            ..object
        };
        progress("deployment not available in time", vec![result.clone()]);
        results.push(result);
        not_ready.push(description);
    }
    WaitOutcome { results, not_ready }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn available_needs_observed_generation_condition_and_replicas() {
        let ready = deployment(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True"}]}
        }));
        assert_eq!(assess(&ready), Readiness::Available);

        let stale = deployment(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "availableReplicas": 2,
                       "conditions": [{"type": "Available", "status": "True"}]}
        }));
        assert!(matches!(assess(&stale), Readiness::Waiting(why) if why.contains("generation 3")));
    }

    #[test]
    fn waiting_state_quotes_the_available_condition() {
        let waiting = deployment(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "availableReplicas": 0,
                       "conditions": [{"type": "Available", "status": "False",
                                       "reason": "MinimumReplicasUnavailable",
                                       "message": "Deployment does not have minimum availability."}]}
        }));
        assert_eq!(
            assess(&waiting),
            Readiness::Waiting(
                "Available=False (MinimumReplicasUnavailable: Deployment does not have minimum availability.), \
                 0/1 replicas available"
                    .into()
            )
        );
        let fresh = deployment(
            json!({"metadata": {"name": "web"}, "spec": {"selector": {}, "template": {}}}),
        );
        assert_eq!(
            assess(&fresh),
            Readiness::Waiting("no status reported yet".into())
        );
    }
}
