//! The agent's enrolment and session loop against a test double of the control plane: bootstrap, hello/welcome,
//! assignments, acks and resends across reconnects, cancel, refused sessions and certificate renewal.

mod support {
    pub mod cluster;
    pub mod control_plane;
}

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use agent_protocol::agent_message::Msg as Up;
use agent_protocol::control_message::Msg as Down;
use agent_protocol::signing::SigningKey;
use agent_protocol::task_body::Spec;
use agent_protocol::{
    ApplySpec, LogBatchAck, ObjectOutcome, ResultAck, TaskAccepted, TaskAssignment, TaskBody,
    TaskCancel, TaskLease, TaskResult, Welcome,
};
use support::control_plane::{
    Behaviour, CLUSTER_ID, FakeControlPlane, GOOD_TOKEN, SessionHandle, rotated_task_key,
    silent_kube_client, task_key,
};

fn unreachable_kube_client() -> kube::Client {
    kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap()
}

/// An apply task for the double's cluster, signed with `key`.
fn signed_assignment(
    key: &SigningKey,
    task_id: &str,
    lease_id: &str,
    manifest: &str,
) -> TaskAssignment {
    let (body, signature) = key.sign_task(&TaskBody {
        cluster_id: CLUSTER_ID.into(),
        task_id: task_id.into(),
        signed_at_unix: 0,
        spec: Some(Spec::Apply(ApplySpec {
            manifest_yaml: manifest.into(),
            wait_timeout_seconds: 0,
            force_conflicts: false,
            prune: None,
            tier: agent_protocol::ApplyTier::Operator.into(),
        })),
    });
    TaskAssignment {
        task_id: task_id.into(),
        lease_id: lease_id.into(),
        attempt: 1,
        lease_expires_unix: 0,
        reason: "test".into(),
        body,
        signature: Some(signature),
        trace_parent: String::new(),
    }
}

fn assignment(task_id: &str, lease_id: &str, manifest: &str) -> Down {
    Down::Task(signed_assignment(task_key(), task_id, lease_id, manifest))
}

fn welcome() -> Down {
    Down::Welcome(Welcome {
        cluster_id: CLUSTER_ID.into(),
        heartbeat_interval_seconds: 1,
        server_time_unix: 0,
    })
}

fn lease(task_id: &str, lease_id: &str) -> TaskLease {
    TaskLease {
        task_id: task_id.into(),
        lease_id: lease_id.into(),
    }
}

async fn accepted(session: &mut SessionHandle) -> TaskAccepted {
    session
        .next_matching(|message| {
            if let Up::Accepted(accepted) = message {
                Some(accepted.clone())
            } else {
                None
            }
        })
        .await
}

async fn result(session: &mut SessionHandle) -> TaskResult {
    session
        .next_matching(|message| {
            if let Up::Result(result) = message {
                Some(result.clone())
            } else {
                None
            }
        })
        .await
}

async fn heartbeat_leases(session: &mut SessionHandle) -> Vec<TaskLease> {
    session
        .next_matching(|message| {
            if let Up::Heartbeat(heartbeat) = message {
                Some(heartbeat.running.clone())
            } else {
                None
            }
        })
        .await
}

/// Reads messages for the span of two heartbeats and fails if `forbidden` matches any of them.
async fn assert_none_for_two_heartbeats(
    session: &mut SessionHandle,
    forbidden: impl Fn(&Up) -> bool,
) {
    let mut heartbeats = 0;
    while heartbeats < 2 {
        let message = session.next().await;
        assert!(!forbidden(&message), "unexpected message: {message:?}");
        heartbeats += usize::from(matches!(message, Up::Heartbeat(_)));
    }
}

#[tokio::test]
async fn results_and_log_batches_are_kept_until_acked_and_resent_after_a_reconnect() {
    let mut control_plane = FakeControlPlane::start(Behaviour::default()).await;
    let state = tempfile::tempdir().unwrap();
    let settings = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    let agent = tokio::spawn(node_agent::agent::run(
        settings,
        unreachable_kube_client(),
        None,
    ));

    let mut session = control_plane.next_session().await;
    let Up::Hello(hello) = session.next().await else {
        panic!("Hello must come first")
    };
    assert_eq!(hello.agent_version, node_agent::AGENT_VERSION);
    assert_eq!(hello.max_concurrent_tasks, 2);
    let key_mode = std::fs::metadata(state.path().join("key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        key_mode, 0o600,
        "bootstrap stored the private key privately"
    );

    session.send(welcome());
    let heartbeat = session
        .next_matching(|message| {
            if let Up::Heartbeat(heartbeat) = message {
                Some(heartbeat.clone())
            } else {
                None
            }
        })
        .await;
    assert_eq!(heartbeat.agent_version, node_agent::AGENT_VERSION);
    assert!(!heartbeat.kubernetes_reachable);
    assert!(!heartbeat.kubernetes_error.is_empty());

    session.send(assignment("t1", "l1", "apiVersion: v1\nkind: [unclosed\n"));
    assert_eq!(
        accepted(&mut session).await,
        TaskAccepted {
            task_id: "t1".into(),
            lease_id: "l1".into()
        }
    );
    let first = result(&mut session).await;
    assert!(!first.success);
    assert!(!first.retryable);
    assert!(
        first.error.starts_with("document 0: invalid YAML"),
        "{}",
        first.error
    );
    let batch = session
        .next_matching(|message| match message {
            Up::Logs(batch)
                if batch
                    .lines
                    .iter()
                    .any(|line| line.message.starts_with("task failed")) =>
            {
                Some(batch.clone())
            }
            _ => None,
        })
        .await;
    let failed_line = batch
        .lines
        .iter()
        .find(|line| line.message.starts_with("task failed"))
        .unwrap();
    assert_eq!(failed_line.task_id, "t1");
    assert_eq!(failed_line.level, agent_protocol::LogLevel::Error as i32);

    // A redelivery of a finished task whose result is unacknowledged does not run it again.
    session.send(assignment("t1", "l1", "apiVersion: v1\nkind: [unclosed\n"));
    assert_none_for_two_heartbeats(&mut session, |message| matches!(message, Up::Accepted(_)))
        .await;

    drop(session);
    let mut session = control_plane.next_session().await;
    assert!(matches!(session.next().await, Up::Hello(_)));
    assert_eq!(
        session.next().await,
        Up::Result(first.clone()),
        "unacked result resent right after Hello"
    );
    let mut resent_batches = Vec::new();
    while !resent_batches.contains(&batch.batch_id) {
        match session.next().await {
            Up::Logs(resent) => resent_batches.push(resent.batch_id),
            other => panic!("expected the unacked log batches, got {other:?}"),
        }
    }

    session.send(welcome());
    session.send(Down::ResultAck(ResultAck {
        task_id: "t1".into(),
        lease_id: "l1".into(),
    }));
    for batch_id in &resent_batches {
        session.send(Down::LogAck(LogBatchAck {
            batch_id: *batch_id,
        }));
    }
    // The lease of an unacknowledged result is kept alive by heartbeats; after the ack it is gone.
    let mut leases = heartbeat_leases(&mut session).await;
    while leases.contains(&lease("t1", "l1")) {
        leases = heartbeat_leases(&mut session).await;
    }

    drop(session);
    let mut session = control_plane.next_session().await;
    assert!(matches!(session.next().await, Up::Hello(_)));
    session.send(welcome());
    loop {
        match session.next().await {
            Up::Heartbeat(_) => break,
            Up::Result(result) => panic!("acked result resent: {result:?}"),
            Up::Logs(logs) => assert!(
                !resent_batches.contains(&logs.batch_id),
                "acked batch resent"
            ),
            _ => {}
        }
    }
    agent.abort();
}

#[tokio::test]
async fn running_tasks_survive_a_reconnect_ignore_duplicates_and_can_be_cancelled() {
    let mut control_plane = FakeControlPlane::start(Behaviour::default()).await;
    let state = tempfile::tempdir().unwrap();
    let settings = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    // The API server never answers, so the apply stays in flight until it is cancelled.
    let agent = tokio::spawn(node_agent::agent::run(
        settings,
        silent_kube_client().await,
        None,
    ));
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";

    let mut session = control_plane.next_session().await;
    session.send(welcome());
    session.send(assignment("t2", "l2", manifest));
    accepted(&mut session).await;
    let mut leases = heartbeat_leases(&mut session).await;
    while !leases.contains(&lease("t2", "l2")) {
        leases = heartbeat_leases(&mut session).await;
    }
    session.send(assignment("t2", "l2", manifest));
    assert_none_for_two_heartbeats(&mut session, |message| {
        matches!(message, Up::Accepted(_) | Up::Result(_))
    })
    .await;

    drop(session);
    let mut session = control_plane.next_session().await;
    session.send(welcome());
    assert!(
        heartbeat_leases(&mut session)
            .await
            .contains(&lease("t2", "l2")),
        "task kept running"
    );

    session.send(Down::Cancel(TaskCancel {
        task_id: "t2".into(),
        lease_id: "other-lease".into(),
    }));
    session.send(Down::Cancel(TaskCancel {
        task_id: "t2".into(),
        lease_id: "l2".into(),
    }));
    let cancelled = result(&mut session).await;
    assert_eq!(
        (cancelled.task_id.as_str(), cancelled.lease_id.as_str()),
        ("t2", "l2")
    );
    assert!(!cancelled.success);
    assert_eq!(cancelled.error, "cancelled");
    session.send(Down::ResultAck(ResultAck {
        task_id: "t2".into(),
        lease_id: "l2".into(),
    }));
    let mut leases = heartbeat_leases(&mut session).await;
    while leases.contains(&lease("t2", "l2")) {
        leases = heartbeat_leases(&mut session).await;
    }
    agent.abort();
}

#[tokio::test]
async fn refused_sessions_are_retried_with_backoff_until_the_server_accepts() {
    let mut control_plane = FakeControlPlane::start(Behaviour {
        refuse_sessions: Some(tonic::Status::permission_denied("cluster deleted")),
        ..Behaviour::default()
    })
    .await;
    let state = tempfile::tempdir().unwrap();
    let settings = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    let agent = tokio::spawn(node_agent::agent::run(
        settings,
        unreachable_kube_client(),
        None,
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while control_plane.session_calls() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent keeps retrying refused sessions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !agent.is_finished(),
        "a refused session does not stop the agent"
    );
    control_plane.set_refuse_sessions(None);
    let mut session = control_plane.next_session().await;
    assert!(matches!(session.next().await, Up::Hello(_)));
    agent.abort();
}

#[tokio::test]
async fn tasks_whose_signature_does_not_verify_are_refused_by_name_and_never_run() {
    let mut control_plane = FakeControlPlane::start(Behaviour::default()).await;
    let state = tempfile::tempdir().unwrap();
    let settings = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    let agent = tokio::spawn(node_agent::agent::run(
        settings,
        unreachable_kube_client(),
        None,
    ));
    let mut session = control_plane.next_session().await;
    assert!(matches!(session.next().await, Up::Hello(_)));
    session.send(welcome());

    let manifest = "apiVersion: v1\nkind: [unclosed\n";
    // One byte of the signed body changed, as a compromised database could.
    let mut tampered = signed_assignment(task_key(), "tampered", "l1", manifest);
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 0x20;
    // Signed by a key the agent never pinned.
    let stranger = SigningKey::from_pem(&SigningKey::generate_pem()).unwrap();
    let foreign = signed_assignment(&stranger, "foreign", "l2", manifest);
    // A validly signed body replayed under another task id.
    let mut moved = signed_assignment(task_key(), "original", "l3", manifest);
    moved.task_id = "moved".into();
    // No signature at all.
    let mut unsigned = signed_assignment(task_key(), "unsigned", "l4", manifest);
    unsigned.signature = None;

    let expectations = [
        (
            tampered,
            "the task was altered after it was signed".to_owned(),
        ),
        (
            foreign,
            format!(
                "signed with key {}, which this agent does not trust",
                stranger.id()
            ),
        ),
        (
            moved,
            "belongs to task original, not to the assigned task moved".to_owned(),
        ),
        (unsigned, "carries no signature".to_owned()),
    ];
    for (assignment, expected) in expectations {
        let task_id = assignment.task_id.clone();
        session.send(Down::Task(assignment));
        let outcome = result(&mut session).await;
        assert_eq!(outcome.task_id, task_id);
        assert!(!outcome.success && !outcome.retryable, "{outcome:?}");
        assert!(
            outcome.error.starts_with("refused: ") && outcome.error.contains(&expected),
            "{task_id}: {}",
            outcome.error
        );
        // Refused before the manifest was looked at: a run would have failed on its YAML instead.
        assert!(outcome.objects.is_empty());
    }
    agent.abort();
}

#[tokio::test]
async fn enrolment_errors_are_clear_and_stored_credentials_skip_bootstrap() {
    let mut control_plane = FakeControlPlane::start(Behaviour::default()).await;
    let state = tempfile::tempdir().unwrap();

    let no_token = control_plane.agent_settings(state.path(), None);
    let err = node_agent::agent::run(no_token, unreachable_kube_client(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no valid credentials") && err.contains("EDGEFLEET_BOOTSTRAP_TOKEN"),
        "{err}"
    );

    let bad_token = control_plane.agent_settings(state.path(), Some("stolen-token"));
    let err = node_agent::agent::run(bad_token, unreachable_kube_client(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rejected the bootstrap token"), "{err}");
    assert!(
        err.contains("bootstrap token is unknown or already used"),
        "server message shown: {err}"
    );
    assert!(
        !err.contains("stolen-token"),
        "the token is never printed: {err}"
    );

    let good = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    let first = tokio::spawn(node_agent::agent::run(
        good,
        unreachable_kube_client(),
        None,
    ));
    let session = control_plane.next_session().await;
    first.abort();
    drop(session);

    // Restarted without a token: the stored certificate is still valid, so no bootstrap is needed.
    let restarted = control_plane.agent_settings(state.path(), None);
    let second = tokio::spawn(node_agent::agent::run(
        restarted,
        unreachable_kube_client(),
        None,
    ));
    let mut session = control_plane.next_session().await;
    assert!(matches!(session.next().await, Up::Hello(_)));
    second.abort();
}

#[tokio::test]
async fn a_certificate_in_its_last_third_is_renewed_and_the_session_reconnects_with_it() {
    let mut control_plane = FakeControlPlane::start(Behaviour {
        lifetime: Duration::from_secs(300),
        backdate: Duration::from_secs(250),
        rotate_task_key_on_renew: true,
        ..Behaviour::default()
    })
    .await;
    let state = tempfile::tempdir().unwrap();
    let settings = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    let agent = tokio::spawn(node_agent::agent::run(
        settings,
        unreachable_kube_client(),
        None,
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while control_plane.renewals() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "renewal happened at start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let renewed = control_plane.renewed_certificate_pem().unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(renewed.as_bytes()).unwrap();
    // The agent stores the renewed credentials before it reconnects with them.
    let mut session = loop {
        let mut session = control_plane.next_session().await;
        if session.client_cert == pem.contents {
            assert!(matches!(session.next().await, Up::Hello(_)));
            break session;
        }
    };
    assert_eq!(
        std::fs::read_to_string(state.path().join("cert.pem")).unwrap(),
        renewed
    );
    assert_eq!(
        control_plane.renewals(),
        1,
        "the renewed certificate is outside the renewal window"
    );
    // The renewal carried a key set signed by the pinned key, so the rotated key is pinned now (and stored).
    let pinned = std::fs::read_to_string(state.path().join("task-keys")).unwrap();
    assert_eq!(pinned.lines().count(), 2, "{pinned}");
    session.send(welcome());
    session.send(Down::Task(signed_assignment(
        rotated_task_key(),
        "rotated",
        "l1",
        "apiVersion: v1\nkind: [unclosed\n",
    )));
    let outcome = result(&mut session).await;
    assert!(
        outcome.error.starts_with("document 0: invalid YAML"),
        "a task signed with the rotated key runs: {}",
        outcome.error
    );
    agent.abort();
}

#[tokio::test]
async fn an_apply_task_reports_progress_per_object_and_then_its_result() {
    let (_cluster, kube_client) = support::cluster::start().await;
    let mut control_plane = FakeControlPlane::start(Behaviour::default()).await;
    let state = tempfile::tempdir().unwrap();
    let settings = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    let agent = tokio::spawn(node_agent::agent::run(settings, kube_client, None));

    let mut session = control_plane.next_session().await;
    session.send(welcome());
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n---\n\
                    apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
    session.send(assignment("t3", "l3", manifest));
    accepted(&mut session).await;
    let mut progressed = Vec::new();
    let result = loop {
        match session.next().await {
            Up::Progress(progress) => {
                assert_eq!(
                    (progress.task_id.as_str(), progress.lease_id.as_str()),
                    ("t3", "l3")
                );
                progressed.extend(progress.objects);
            }
            Up::Result(result) => break result,
            _ => {}
        }
    };
    assert!(result.success, "{}", result.error);
    assert_eq!(
        progressed, result.objects,
        "each object was reported as it was applied"
    );
    let applied: Vec<(&str, ObjectOutcome)> = result
        .objects
        .iter()
        .map(|object| (object.kind.as_str(), object.outcome()))
        .collect();
    assert_eq!(
        applied,
        [
            ("Namespace", ObjectOutcome::Applied),
            ("ConfigMap", ObjectOutcome::Applied)
        ]
    );
    agent.abort();
}

#[tokio::test]
async fn no_more_than_max_concurrent_tasks_run_at_once() {
    let mut control_plane = FakeControlPlane::start(Behaviour::default()).await;
    let state = tempfile::tempdir().unwrap();
    let settings = control_plane.agent_settings(state.path(), Some(GOOD_TOKEN));
    assert_eq!(settings.max_concurrent_tasks, 2);
    let agent = tokio::spawn(node_agent::agent::run(
        settings,
        silent_kube_client().await,
        None,
    ));
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";

    let mut session = control_plane.next_session().await;
    session.send(welcome());
    for task in ["a", "b", "c"] {
        session.send(assignment(task, "l", manifest));
    }
    // A run logs "task started" once it holds a slot; with two slots the third waits.
    let mut started: Vec<String> = Vec::new();
    let mut heartbeats_after_two = 0;
    while heartbeats_after_two < 2 {
        match session.next().await {
            Up::Logs(batch) => started.extend(
                batch
                    .lines
                    .into_iter()
                    .filter(|line| line.message == "task started")
                    .map(|line| line.task_id),
            ),
            Up::Heartbeat(_) if started.len() >= 2 => heartbeats_after_two += 1,
            _ => {}
        }
    }
    assert_eq!(started.len(), 2, "only two tasks run at once: {started:?}");
    let waiting = ["a", "b", "c"]
        .into_iter()
        .find(|task| !started.iter().any(|s| s == task))
        .unwrap();

    session.send(Down::Cancel(TaskCancel {
        task_id: started[0].clone(),
        lease_id: "l".into(),
    }));
    session
        .next_matching(|message| match message {
            Up::Logs(batch) => batch
                .lines
                .iter()
                .any(|line| line.message == "task started" && line.task_id == waiting)
                .then_some(()),
            _ => None,
        })
        .await;
    agent.abort();
}
