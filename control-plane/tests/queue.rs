//! The task queue and the demo-step link, against a real PostgreSQL (one database per test): leases, renewal,
//! expiry and redelivery, completion with a stale lease, cancellation and idempotency; heartbeats and the
//! dispatcher's patrol queries. Waits are for conditions
//! (`harness::wait_until`), never fixed sleeps.

use std::time::Duration;

use agent_protocol::signing::SigningKey;
use control_plane::domain::taskspec::{ApplyPayload, TaskSpec, Tier};
use control_plane::domain::{
    ClusterRole, ClusterStatus, DemoConfig, DemoStatus, RequestedRegion, StepName, StepState,
    TaskKind, TaskState,
};
use control_plane::signing::TaskSigner;
use control_plane::store::{
    Demo, DemoInsert, Heartbeat, Issuance, LeaseRef, NewCertificate, NewCloudAccount, NewCluster,
    NewDemo, NewRegion, NewTask, RefusedCertificate, Region, Store, StoreError, StreamLease,
    TaskCompletion, TaskInsert, channels,
};
use harness::wait_until;
use uuid::Uuid;

struct Queue {
    store: Store,
    cluster_id: Uuid,
    signer: TaskSigner,
}

/// A cloud account with one region, `eu`.
async fn region(store: &Store) -> Region {
    let cloud = store
        .insert_cloud(NewCloudAccount {
            id: Uuid::new_v4(),
            name: "cloud".into(),
            provider: "existing".into(),
            credentials_sealed: None,
            credential_fields: Vec::new(),
            tags: serde_json::json!({}),
        })
        .await
        .unwrap();
    store
        .insert_region(NewRegion {
            cloud_account_id: cloud.id,
            code: "eu".into(),
            display_name: "EU".into(),
            enabled: true,
        })
        .await
        .unwrap()
}

async fn queue(name: &str) -> Queue {
    let url = harness::postgres().create_database(name);
    let store = Store::connect(&url, 8, Duration::from_secs(30))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let region = region(&store).await;
    let cluster = store
        .insert_cluster(NewCluster {
            region_id: region.id,
            name: "eu-1".into(),
            role: ClusterRole::User,
            api_endpoint: None,
            provision_spec: None,
        })
        .await
        .unwrap();
    assert_eq!(cluster.status, ClusterStatus::Registered);
    let key = SigningKey::from_pem(&SigningKey::generate_pem()).unwrap();
    Queue {
        store,
        cluster_id: cluster.id,
        signer: TaskSigner::new(key, Vec::new()),
    }
}

fn apply(namespace: &str) -> TaskSpec {
    TaskSpec::Apply(ApplyPayload {
        manifest: format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"),
        wait_timeout_seconds: 0,
        force_conflicts: false,
        prune: None,
        tier: Tier::Operator,
    })
}

impl Queue {
    fn new_task(&self, spec: TaskSpec, max_attempts: i32, key: Option<&str>) -> NewTask {
        let mut task = NewTask {
            id: Uuid::new_v4(),
            cluster_id: self.cluster_id,
            spec,
            reason: "test".into(),
            idempotency_key: key.map(str::to_owned),
            parent_id: None,
            created_by: "test".into(),
            max_attempts,
            seal: None,
            demo_step: None,
            trace_parent: None,
        };
        if task.spec.kind().runs_on_agent() {
            self.signer.seal(&mut task).unwrap();
        }
        task
    }

    async fn insert(&self, spec: TaskSpec, max_attempts: i32) -> Uuid {
        match self
            .store
            .insert_task(self.new_task(spec, max_attempts, None))
            .await
            .unwrap()
        {
            TaskInsert::Created(task) => task.id,
            TaskInsert::Existing(_) => panic!("a task without a key is always new"),
        }
    }

    /// Leases for one agent stream, with the given lease length: (task, lease, attempt).
    async fn lease(&self, limit: i64, lease: Duration) -> Vec<(Uuid, Uuid, i32)> {
        let request = StreamLease {
            cluster_id: self.cluster_id,
            session_id: Uuid::new_v4(),
            room: limit,
        };
        self.store
            .lease_tasks_for_streams(&[request], TaskKind::AGENT, lease)
            .await
            .unwrap()
            .remove(0)
            .into_iter()
            .map(|task| (task.id, task.lease_id, task.attempts))
            .collect()
    }

    /// The agent accepted the delivery; whether its lease was current.
    async fn accept(&self, task_id: Uuid, lease_id: Uuid) -> bool {
        let accepted = LeaseRef {
            cluster_id: self.cluster_id,
            task_id,
            lease_id,
        };
        self.store.mark_running_many(&[accepted]).await.unwrap()[0]
    }

    async fn complete(
        &self,
        task_id: Uuid,
        lease_id: Uuid,
        success: bool,
        retryable: bool,
    ) -> Option<TaskState> {
        self.store
            .complete_task(
                self.cluster_id,
                task_id,
                lease_id,
                &TaskCompletion {
                    success,
                    error: (!success).then(|| "it broke".to_owned()),
                    objects: Vec::new(),
                    retryable,
                    fails_cluster: None,
                },
            )
            .await
            .unwrap()
    }

    async fn state(&self, task_id: Uuid) -> TaskState {
        self.store.task(task_id).await.unwrap().state
    }

    /// Runs the expiry sweep until it has taken `task_id`'s lease back.
    async fn expire(&self, task_id: Uuid) {
        wait_until(
            "the lease to expire",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async {
                self.store.expire_leases().await.unwrap();
                !self.state(task_id).await.is_leased()
            },
        )
        .await
        .unwrap();
    }

    /// A new demo of the `static-web` template, not placed yet.
    async fn demo(&self, name: &str) -> Demo {
        let templates = harness::workspace_root().join("images/templates");
        let errors = control_plane::templates::load_all(&self.store, &templates)
            .await
            .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let template = self
            .store
            .template_revisions("static-web")
            .await
            .unwrap()
            .remove(0);
        let DemoInsert::Created(demo) = self
            .store
            .insert_demo(NewDemo {
                name: name.into(),
                owner: "alice".into(),
                template_id: template.id,
                image: "registry.test/hello:1".into(),
                requested_region: RequestedRegion::Auto,
                config: DemoConfig {
                    env: Default::default(),
                    replicas: 1,
                },
                idempotency_key: None,
                trace_parent: None,
            })
            .await
            .unwrap()
        else {
            panic!("a new demo")
        };
        demo
    }

    /// The rows of `task_queue` (task, held) and the open tasks (task, not pending), both in task order: the
    /// two must be equal after any change.
    async fn queue_and_open_tasks(&self) -> (Vec<(Uuid, bool)>, Vec<(Uuid, bool)>) {
        let queue = sqlx::query_as("SELECT task_id, held FROM task_queue ORDER BY task_id")
            .fetch_all(self.store.pool())
            .await
            .unwrap();
        let open = sqlx::query_as(
            "SELECT id, state <> 'pending' FROM tasks
             WHERE state IN ('pending', 'leased', 'running') ORDER BY id",
        )
        .fetch_all(self.store.pool())
        .await
        .unwrap();
        (queue, open)
    }

    /// Asserts that `task_queue` holds exactly `expected` (task, held), and that this is what `tasks` says.
    async fn assert_queue(&self, step: &str, expected: &[(Uuid, bool)]) {
        let (queue, open) = self.queue_and_open_tasks().await;
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(queue, expected, "task_queue after {step}");
        assert_eq!(queue, open, "task_queue against tasks after {step}");
    }

    async fn demo_wakes(&self, demo_id: Uuid) -> i64 {
        sqlx::query_scalar("SELECT planner_wakes FROM demos WHERE id = $1")
            .bind(demo_id)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }
}

/// The queue's batched statements are estimated dear enough for JIT compilation, which cost more than running
/// them; every connection of the store's pool has it off, whatever the server's default.
#[tokio::test]
async fn the_store_turns_jit_off_on_every_connection() {
    let q = queue("queue_jit").await;
    let server_default: String =
        sqlx::query_scalar("SELECT boot_val FROM pg_settings WHERE name = 'jit'")
            .fetch_one(q.store.pool())
            .await
            .unwrap();
    assert_eq!(
        server_default, "on",
        "the test needs a server whose default differs"
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut connection = q.store.pool().acquire().await.unwrap();
        let jit: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(jit, "off");
        held.push(connection);
    }
}

#[tokio::test]
async fn a_task_goes_pending_leased_running_succeeded_and_a_second_report_changes_nothing() {
    let q = queue("queue_happy").await;
    let id = q.insert(apply("a"), 3).await;
    assert_eq!(q.state(id).await, TaskState::Pending);
    let [(leased, lease_id, attempts)] = q.lease(10, Duration::from_secs(60)).await[..] else {
        panic!("one task is leased")
    };
    assert_eq!((leased, attempts), (id, 1));
    assert_eq!(q.state(id).await, TaskState::Leased);
    assert!(q.accept(id, lease_id).await);
    assert!(
        !q.accept(id, lease_id).await,
        "a second acceptance changes nothing"
    );
    assert_eq!(q.state(id).await, TaskState::Running);
    assert_eq!(
        q.complete(id, lease_id, true, false).await,
        Some(TaskState::Succeeded)
    );
    assert!(q.store.task(id).await.unwrap().finished_at.is_some());
    assert_eq!(q.complete(id, lease_id, false, false).await, None);
    assert_eq!(q.state(id).await, TaskState::Succeeded);
    let events: Vec<String> = q
        .store
        .task_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|event| format!("{}: {}", event.kind, event.message))
        .collect();
    assert_eq!(
        events,
        [
            "created: test",
            "leased: delivered to agent (attempt 1)",
            "running: agent started the task",
            "succeeded: succeeded",
        ]
    );
}

/// Every lease, expiry and patrol reads `task_queue`, which the database keeps in step with `tasks`: a row per
/// open task, marked held while leased or running, gone once the task ends whichever way it ends.
#[tokio::test]
async fn task_queue_holds_each_open_task_until_it_ends_whichever_way_it_ends() {
    let q = queue("queue_open_table").await;
    let [done, retried, expired, cancelled, deleted, left] = [
        q.insert(apply("a"), 3).await,
        q.insert(apply("b"), 3).await,
        q.insert(apply("c"), 3).await,
        q.insert(apply("d"), 3).await,
        q.insert(apply("e"), 3).await,
        q.insert(apply("f"), 3).await,
    ];
    let terraform = q.insert(TaskSpec::TerraformDrift, 3).await;
    let all_pending =
        [done, retried, expired, cancelled, deleted, left, terraform].map(|id| (id, false));
    q.assert_queue("submission", &all_pending).await;

    let leases = q.lease(3, Duration::from_millis(300)).await;
    let leased: Vec<Uuid> = leases.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(leased, [done, retried, expired], "oldest first");
    let lease_of = |id: Uuid| leases.iter().find(|(task, _, _)| *task == id).unwrap().1;
    let mut expected = vec![
        (done, true),
        (retried, true),
        (expired, true),
        (cancelled, false),
        (deleted, false),
        (left, false),
        (terraform, false),
    ];
    q.assert_queue("a lease", &expected).await;
    assert!(q.accept(done, lease_of(done)).await);
    assert!(q.accept(retried, lease_of(retried)).await);
    q.assert_queue("acceptance (leased -> running: still held)", &expected)
        .await;

    assert_eq!(
        q.complete(done, lease_of(done), true, false).await,
        Some(TaskState::Succeeded)
    );
    expected.retain(|(id, _)| *id != done);
    q.assert_queue("success", &expected).await;
    assert_eq!(
        q.complete(retried, lease_of(retried), false, true).await,
        Some(TaskState::Pending)
    );
    expected[0].1 = false;
    q.assert_queue("a retryable failure", &expected).await;
    q.expire(expired).await;
    expected[1].1 = false;
    q.assert_queue("an expired lease", &expected).await;

    q.store.cancel_task(cancelled, "alice").await.unwrap();
    expected.retain(|(id, _)| *id != cancelled);
    q.assert_queue("a cancel", &expected).await;
    sqlx::query("DELETE FROM tasks WHERE id = $1")
        .bind(deleted)
        .execute(q.store.pool())
        .await
        .unwrap();
    expected.retain(|(id, _)| *id != deleted);
    q.assert_queue("a delete", &expected).await;
    assert_eq!(
        q.store
            .clusters_with_pending_tasks(&[q.cluster_id], TaskKind::AGENT)
            .await
            .unwrap(),
        [q.cluster_id]
    );

    q.store.delete_cluster(q.cluster_id, None).await.unwrap();
    q.assert_queue("the cluster's deletion", &[]).await;
    for id in [retried, expired, left, terraform] {
        assert_eq!(q.state(id).await, TaskState::Cancelled);
    }
    assert!(
        q.store
            .clusters_with_pending_tasks(&[q.cluster_id], TaskKind::AGENT)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn leases_respect_the_limit_the_kinds_and_never_hand_one_task_to_two_streams() {
    let q = queue("queue_concurrent").await;
    let mut agent_tasks = Vec::new();
    for namespace in ["a", "b", "c", "d", "e"] {
        agent_tasks.push(q.insert(apply(namespace), 3).await);
    }
    let terraform = q.insert(TaskSpec::TerraformDrift, 3).await;
    let lease = Duration::from_secs(60);
    let (first, second, third) =
        tokio::join!(q.lease(2, lease), q.lease(2, lease), q.lease(2, lease));
    assert!(first.len() <= 2 && second.len() <= 2 && third.len() <= 2);
    let mut leased: Vec<Uuid> = [first, second, third]
        .concat()
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    leased.sort();
    agent_tasks.sort();
    assert_eq!(leased, agent_tasks, "every agent task leased exactly once");
    assert_eq!(q.state(terraform).await, TaskState::Pending);
    assert!(q.lease(10, lease).await.is_empty());
}

#[tokio::test]
async fn an_expired_lease_is_redelivered_and_the_old_holders_report_is_dropped() {
    let q = queue("queue_expiry").await;
    let id = q.insert(apply("a"), 3).await;
    let [(_, old_lease, 1)] = q.lease(1, Duration::from_millis(300)).await[..] else {
        panic!("first attempt leased")
    };
    assert!(q.accept(id, old_lease).await);
    q.expire(id).await;
    assert_eq!(q.state(id).await, TaskState::Pending);
    let [(_, new_lease, 2)] = q.lease(1, Duration::from_secs(60)).await[..] else {
        panic!("second attempt leased")
    };
    assert!(!q.accept(id, old_lease).await);
    assert_eq!(q.complete(id, old_lease, true, false).await, None);
    assert_eq!(q.state(id).await, TaskState::Leased);
    assert_eq!(
        q.complete(id, new_lease, true, false).await,
        Some(TaskState::Succeeded)
    );
}

#[tokio::test]
async fn an_expired_lease_with_no_attempts_left_fails_the_task_saying_why() {
    let q = queue("queue_expiry_final").await;
    let id = q.insert(apply("a"), 1).await;
    let [(_, lease_id, 1)] = q.lease(1, Duration::from_millis(300)).await[..] else {
        panic!("leased")
    };
    assert!(q.accept(id, lease_id).await);
    q.expire(id).await;
    let task = q.store.task(id).await.unwrap();
    assert_eq!(task.state, TaskState::Failed);
    assert_eq!(
        task.error.as_deref(),
        Some("no result from the agent within the lease, 1 attempt(s)")
    );
    assert!(task.finished_at.is_some());
    assert!(q.lease(1, Duration::from_secs(60)).await.is_empty());
}

#[tokio::test]
async fn a_delivery_never_acknowledged_is_redelivered_without_using_up_an_attempt() {
    let q = queue("queue_unacknowledged").await;
    let id = q.insert(apply("a"), 1).await;
    for _ in 0..3 {
        let [(_, _, 1)] = q.lease(1, Duration::from_millis(300)).await[..] else {
            panic!("delivered again as attempt 1")
        };
        q.expire(id).await;
        assert_eq!(q.state(id).await, TaskState::Pending);
    }
    assert_eq!(q.store.task(id).await.unwrap().attempts, 0);
    let events = q.store.task_events(id).await.unwrap();
    assert!(
        events.iter().any(|event| event
            .message
            .contains("was not acknowledged within the lease")),
        "{events:?}"
    );
    let [(_, lease_id, 1)] = q.lease(1, Duration::from_secs(60)).await[..] else {
        panic!("leased once more")
    };
    assert!(q.accept(id, lease_id).await);
    assert_eq!(
        q.complete(id, lease_id, true, false).await,
        Some(TaskState::Succeeded)
    );
}

#[tokio::test]
async fn renewal_keeps_only_the_renewed_lease_alive() {
    let q = queue("queue_renew").await;
    let kept = q.insert(apply("kept"), 3).await;
    let dropped = q.insert(apply("dropped"), 3).await;
    let leased = q.lease(2, Duration::from_millis(500)).await;
    let lease_of = |id: Uuid| leased.iter().find(|(task, _, _)| *task == id).unwrap().1;
    let renewed = q
        .store
        .renew_leases(
            q.cluster_id,
            &[(kept, lease_of(kept)), (dropped, Uuid::new_v4())],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(renewed, 1, "a lease id that is not current renews nothing");
    // Both leases were 500 ms long: once the unrenewed one has expired, the renewed one would have too.
    q.expire(dropped).await;
    assert_eq!(q.state(dropped).await, TaskState::Pending);
    assert_eq!(q.state(kept).await, TaskState::Leased);
}

#[tokio::test]
async fn a_retryable_failure_is_redelivered_until_the_attempts_are_used() {
    let q = queue("queue_retry").await;
    let id = q.insert(apply("a"), 2).await;
    let [(_, lease, 1)] = q.lease(1, Duration::from_secs(60)).await[..] else {
        panic!("first attempt")
    };
    assert_eq!(
        q.complete(id, lease, false, true).await,
        Some(TaskState::Pending)
    );
    let [(_, lease, 2)] = q.lease(1, Duration::from_secs(60)).await[..] else {
        panic!("second attempt")
    };
    assert_eq!(
        q.complete(id, lease, false, true).await,
        Some(TaskState::Failed)
    );
    let task = q.store.task(id).await.unwrap();
    assert_eq!(task.error.as_deref(), Some("it broke"));
    assert!(task.finished_at.is_some());

    let fatal = q.insert(apply("b"), 5).await;
    let [(_, lease, 1)] = q.lease(1, Duration::from_secs(60)).await[..] else {
        panic!("fatal attempt")
    };
    assert_eq!(
        q.complete(fatal, lease, false, false).await,
        Some(TaskState::Failed)
    );
}

#[tokio::test]
async fn cancelling_tells_the_lease_holder_and_drops_its_later_report() {
    let q = queue("queue_cancel").await;
    let pending = q.insert(apply("a"), 3).await;
    let cancelled = q.store.cancel_task(pending, "alice").await.unwrap();
    assert_eq!(cancelled.state, TaskState::Cancelled);
    assert_eq!(cancelled.error.as_deref(), Some("cancelled by alice"));
    match q.store.cancel_task(pending, "alice").await {
        Err(StoreError::Conflict(message)) => assert_eq!(
            message,
            format!("task {pending} is already cancelled and cannot be cancelled")
        ),
        other => panic!("a second cancel is a conflict, got {other:?}"),
    }

    let held = q.insert(apply("b"), 3).await;
    let [(_, lease, _)] = q.lease(1, Duration::from_secs(60)).await[..] else {
        panic!("leased")
    };
    let mut listener = q.store.listen(channels::TASK_CANCELLED).await.unwrap();
    q.store.cancel_task(held, "bob").await.unwrap();
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("the cancellation is announced")
        .unwrap();
    assert_eq!(
        notification.payload(),
        format!("{}:{held}:{lease}", q.cluster_id)
    );
    assert_eq!(q.complete(held, lease, true, false).await, None);
    assert_eq!(q.state(held).await, TaskState::Cancelled);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_task_and_refuses_a_different_request() {
    let q = queue("queue_idempotency").await;
    let inserts = (0..6).map(|_| {
        q.store
            .insert_task(q.new_task(apply("a"), 3, Some("click-1")))
    });
    let results = futures::future::join_all(inserts).await;
    let created: Vec<Uuid> = results
        .iter()
        .filter_map(|result| match result.as_ref().unwrap() {
            TaskInsert::Created(task) => Some(task.id),
            TaskInsert::Existing(_) => None,
        })
        .collect();
    assert_eq!(
        created.len(),
        1,
        "racing inserts with one key create one task"
    );
    for result in &results {
        let (TaskInsert::Created(task) | TaskInsert::Existing(task)) = result.as_ref().unwrap();
        assert_eq!(task.id, created[0]);
    }
    match q
        .store
        .insert_task(q.new_task(apply("b"), 3, Some("click-1")))
        .await
    {
        Err(StoreError::Conflict(message)) => assert!(
            message.contains("was already used for task")
                && message.contains(&created[0].to_string()),
            "{message}"
        ),
        Err(other) => panic!("expected a conflict, got {other}"),
        Ok(_) => panic!("a reused key with another manifest was accepted"),
    }

    // In one batch: a key used twice for the same request makes one task; an earlier key is found; a key
    // used twice for different requests refuses the whole batch, naming the entry.
    let batch = q
        .store
        .insert_tasks(vec![
            q.new_task(apply("c"), 3, Some("click-2")),
            q.new_task(apply("c"), 3, Some("click-2")),
            q.new_task(apply("a"), 3, Some("click-1")),
            q.new_task(apply("d"), 3, None),
        ])
        .await
        .unwrap();
    let outcomes: Vec<(bool, Uuid)> = batch
        .iter()
        .map(|inserted| match inserted {
            TaskInsert::Created(task) => (true, task.id),
            TaskInsert::Existing(task) => (false, task.id),
        })
        .collect();
    assert!(outcomes[0].0 && !outcomes[1].0 && !outcomes[2].0 && outcomes[3].0);
    assert_eq!(outcomes[1].1, outcomes[0].1);
    assert_eq!(outcomes[2].1, created[0]);
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tasks")
            .fetch_one(q.store.pool())
            .await
            .unwrap()
    };
    let before = count().await;
    match q
        .store
        .insert_tasks(vec![
            q.new_task(apply("e"), 3, Some("click-3")),
            q.new_task(apply("f"), 3, Some("click-3")),
        ])
        .await
    {
        Err(StoreError::Conflict(message)) => assert!(
            message.starts_with("task 1 of the batch: idempotency key \"click-3\""),
            "{message}"
        ),
        Err(other) => panic!("expected a conflict, got {other}"),
        Ok(_) => panic!("one key for two different requests was accepted"),
    }
    assert_eq!(count().await, before, "a refused batch inserts nothing");
}

#[tokio::test]
async fn a_step_task_wakes_its_demo_through_the_foreign_key() {
    let q = queue("queue_demo_wake").await;
    let demo = q.demo("hello").await;
    assert_eq!(demo.status, DemoStatus::Developing);
    assert_eq!(demo.current_step, Some(StepName::EnsureCluster));
    let (_, steps) = q.store.demo_with_steps(demo.id).await.unwrap();
    let names: Vec<StepName> = steps.iter().map(|s| s.name).collect();
    assert_eq!(names, StepName::DEPLOY);
    assert!(steps.iter().all(|s| s.state == StepState::Pending));

    let mut step_task = q.new_task(apply("a"), 3, None);
    step_task.demo_step = Some(steps[3].id);
    let TaskInsert::Created(task) = q.store.insert_task(step_task).await.unwrap() else {
        panic!("a new task")
    };
    let before = q.demo_wakes(demo.id).await;
    assert_eq!(q.lease(1, Duration::from_secs(60)).await.len(), 1);
    assert_eq!(q.state(task.id).await, TaskState::Leased);
    assert_eq!(
        q.demo_wakes(demo.id).await,
        before + 1,
        "the leased step task woke its demo"
    );

    let unrelated = q.insert(apply("b"), 3).await;
    let after = q.demo_wakes(demo.id).await;
    assert_eq!(q.lease(1, Duration::from_secs(60)).await.len(), 1);
    assert_eq!(q.state(unrelated).await, TaskState::Leased);
    assert_eq!(
        q.demo_wakes(demo.id).await,
        after,
        "a task of no step wakes nothing"
    );
}

/// Migration 0023: the trigger on `clusters` fires on a change of status only, which wakes the demos placed on
/// the cluster; a rewrite of the row that keeps the status (every heartbeat) wakes nothing.
#[tokio::test]
async fn a_cluster_status_change_wakes_its_demos_and_a_heartbeat_does_not() {
    let q = queue("queue_cluster_wake").await;
    let demo = q.demo("hello").await;
    sqlx::query("UPDATE demos SET cluster_id = $1 WHERE id = $2")
        .bind(q.cluster_id)
        .bind(demo.id)
        .execute(q.store.pool())
        .await
        .unwrap();
    let set_status = |status: &'static str| {
        sqlx::query("UPDATE clusters SET status = $1, last_heartbeat_at = now() WHERE id = $2")
            .bind(status)
            .bind(q.cluster_id)
            .execute(q.store.pool())
    };

    let before = q.demo_wakes(demo.id).await;
    set_status("ready").await.unwrap();
    assert_eq!(
        q.demo_wakes(demo.id).await,
        before + 1,
        "registered -> ready"
    );
    set_status("ready").await.unwrap();
    assert_eq!(
        q.demo_wakes(demo.id).await,
        before + 1,
        "the same status written again"
    );
    sqlx::query("UPDATE clusters SET last_heartbeat_at = now(), node_count = 3 WHERE id = $1")
        .bind(q.cluster_id)
        .execute(q.store.pool())
        .await
        .unwrap();
    assert_eq!(
        q.demo_wakes(demo.id).await,
        before + 1,
        "a heartbeat's columns only"
    );
    set_status("degraded").await.unwrap();
    assert_eq!(q.demo_wakes(demo.id).await, before + 2, "ready -> degraded");
}

#[tokio::test]
async fn a_delete_during_a_deploy_cancels_the_running_step_task_and_queues_the_teardown() {
    let q = queue("queue_demo_delete").await;
    let demo = q.demo("hello").await;
    let (_, steps) = q.store.demo_with_steps(demo.id).await.unwrap();
    let mut apply_task = q.new_task(apply("demo-hello"), 3, None);
    apply_task.demo_step = Some(steps[3].id);
    let TaskInsert::Created(task) = q.store.insert_task(apply_task).await.unwrap() else {
        panic!("a new task")
    };
    q.store
        .set_step(
            &demo,
            &steps[3],
            StepState::Running,
            "apply task queued",
            Some(task.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(q.lease(1, Duration::from_secs(60)).await.len(), 1);
    // A finished step does not move again.
    q.store
        .set_step(&demo, &steps[0], StepState::Succeeded, "placed", None, None)
        .await
        .unwrap();
    match q
        .store
        .set_step(&demo, &steps[0], StepState::Failed, "late", None, None)
        .await
    {
        Err(StoreError::Conflict(message)) => {
            assert_eq!(message, "a demo step cannot go from succeeded to failed")
        }
        other => panic!("a finished step moved again: {other:?}"),
    }

    let deleting = q
        .store
        .request_demo_delete(demo.id, "bob", None)
        .await
        .unwrap();
    assert_eq!(deleting.version, 2);
    assert_eq!(deleting.status, DemoStatus::Offline);
    assert_eq!(deleting.current_step, Some(StepName::Prune));
    let task = q.store.task(task.id).await.unwrap();
    assert_eq!(task.state, TaskState::Cancelled);
    assert_eq!(task.error.as_deref(), Some("cancelled by bob"));
    let (_, teardown) = q.store.demo_with_steps(demo.id).await.unwrap();
    let names: Vec<StepName> = teardown.iter().map(|s| s.name).collect();
    assert_eq!(names, StepName::TEARDOWN);
    assert!(teardown.iter().all(|s| s.state == StepState::Pending));

    // A look at the version the delete replaced changes nothing on the demo.
    match q
        .store
        .set_step(&demo, &steps[3], StepState::Succeeded, "late", None, None)
        .await
    {
        Err(StoreError::Conflict(message)) => {
            assert_eq!(message, "demo hello moved on from version 1 to 2")
        }
        other => panic!("a step of a replaced version moved: {other:?}"),
    }
    let after = q.store.demo(demo.id).await.unwrap();
    assert_eq!(after.current_step, Some(StepName::Prune));
    assert_eq!(after.status, DemoStatus::Offline);
    // Asking again while the delete runs changes nothing.
    let again = q
        .store
        .request_demo_delete(demo.id, "bob", None)
        .await
        .unwrap();
    assert_eq!(again.version, 2);
}

/// Migration 0014 on a database written by the previous version: region ids in other spellings, environment
/// values that are not text, and a provisioning task the planner queued before tasks named their step.
#[tokio::test]
async fn the_typed_domain_migration_keeps_rows_written_before_it_readable() {
    let url = harness::postgres().create_database("queue_migration");
    let store = Store::connect(&url, 4, Duration::from_secs(30))
        .await
        .unwrap();
    sqlx::migrate!("./migrations")
        .run_to(13, store.pool())
        .await
        .unwrap();
    let region = region(&store).await;
    let templates = harness::workspace_root().join("images/templates");
    control_plane::templates::load_all(&store, &templates)
        .await
        .unwrap();
    let template = store
        .template_revisions("static-web")
        .await
        .unwrap()
        .remove(0);
    let cluster_id = Uuid::new_v4();
    let demo_id = Uuid::new_v4();
    let task_id = Uuid::new_v4();
    let legacy = format!(
        "INSERT INTO clusters (id, region_id, name, role, status, provisioning, provision_spec)
             VALUES ('{cluster_id}', '{region}', 'eu-demos', 'user', 'provisioning', 'terraform', '{{}}');
         INSERT INTO demos (id, name, owner, template_id, image, requested_region, cluster_id, config, status,
                            current_step)
             VALUES ('{demo_id}', 'legacy', 'alice', '{template}', 'registry.test/x:1', '{{{region_upper}}}',
                     '{cluster_id}', '{{\"env\": {{\"WORKERS\": 4, \"DEBUG\": true, \"NAME\": \"x\"}}, \"replicas\": 1}}',
                     'developing', 'ensure_cluster');
         INSERT INTO demo_versions (demo_id, version, template_id, image, config, reason, created_by, created_at)
             VALUES ('{demo_id}', 1, '{template}', 'registry.test/x:1', '{{\"env\": {{\"WORKERS\": 4}}, \"replicas\": 1}}',
                     'created', 'alice', now() - interval '1 minute');
         INSERT INTO demo_steps (demo_id, version, position, name, state, started_at)
             VALUES ('{demo_id}', 1, 0, 'ensure_cluster', 'running', now());
         INSERT INTO tasks (id, cluster_id, kind, payload, state, reason, created_by, max_attempts, created_at)
             VALUES ('{task_id}', '{cluster_id}', 'terraform_apply', '{{}}', 'running', 'demo needs a cluster',
                     'planner:demo:{demo_id}', 3, now() - interval '30 seconds');",
        region = region.id,
        region_upper = region.id.to_string().to_uppercase(),
        template = template.id,
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(legacy))
        .execute(store.pool())
        .await
        .unwrap();

    store.migrate().await.unwrap();

    let demo = store.demo(demo_id).await.unwrap();
    assert_eq!(demo.requested_region, RequestedRegion::Region(region.id));
    assert_eq!(
        demo.config.0.env,
        [
            ("DEBUG".to_owned(), "true".to_owned()),
            ("NAME".to_owned(), "x".to_owned()),
            ("WORKERS".to_owned(), "4".to_owned()),
        ]
        .into()
    );
    let versions = store.demo_versions(demo_id).await.unwrap();
    assert_eq!(versions[0].config.0.env["WORKERS"], "4");
    let step_id: i64 = sqlx::query_scalar("SELECT id FROM demo_steps WHERE demo_id = $1")
        .bind(demo_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let linked: Option<i64> = sqlx::query_scalar("SELECT demo_step_id FROM tasks WHERE id = $1")
        .bind(task_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        linked,
        Some(step_id),
        "the provisioning task names its step"
    );
    assert_eq!(
        store.task(task_id).await.unwrap().kind,
        TaskKind::TerraformApply
    );
    let held: bool = sqlx::query_scalar("SELECT held FROM task_queue WHERE task_id = $1")
        .bind(task_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(
        held,
        "an open task written before the queue table is in it, held"
    );
}

/// The closed sets in `domain` and the schema's CHECK constraints must list the same values, or a value one side
/// accepts is refused by the other.
#[tokio::test]
async fn the_schema_accepts_exactly_the_domain_values() {
    let q = queue("queue_domain_checks").await;
    let allowed = |table: &'static str, column: &'static str| {
        let pool = q.store.pool().clone();
        async move {
            let definitions: Vec<String> = sqlx::query_scalar(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                 WHERE c.conrelid = $1::regclass AND c.contype = 'c'",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap();
            let definition = definitions
                .into_iter()
                .find(|d| d.contains(&format!("({column} = ANY")))
                .unwrap_or_else(|| panic!("no CHECK on {table}.{column}"));
            let mut values: Vec<String> = definition
                .split('\'')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            values.sort();
            values
        }
    };
    fn sorted<T: Copy>(all: &[T], text: fn(T) -> &'static str) -> Vec<String> {
        let mut values: Vec<String> = all.iter().map(|v| text(*v).to_owned()).collect();
        values.sort();
        values
    }
    assert_eq!(
        allowed("tasks", "state").await,
        sorted(TaskState::ALL, TaskState::as_str)
    );
    assert_eq!(
        allowed("tasks", "kind").await,
        sorted(TaskKind::ALL, TaskKind::as_str)
    );
    assert_eq!(
        allowed("clusters", "status").await,
        sorted(ClusterStatus::ALL, ClusterStatus::as_str)
    );
    assert_eq!(
        allowed("demo_steps", "name").await,
        sorted(StepName::ALL, StepName::as_str)
    );
    assert_eq!(
        allowed("demo_steps", "state").await,
        sorted(StepState::ALL, StepState::as_str)
    );
    assert_eq!(
        allowed("demos", "status").await,
        sorted(DemoStatus::ALL, DemoStatus::as_str)
    );

    // A stored value outside the set is refused when read, naming the type.
    sqlx::query("ALTER TABLE clusters DROP CONSTRAINT clusters_status_known")
        .execute(q.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE clusters SET status = 'exploded' WHERE id = $1")
        .bind(q.cluster_id)
        .execute(q.store.pool())
        .await
        .unwrap();
    let error = q.store.cluster(q.cluster_id).await.unwrap_err().to_string();
    assert!(
        error.contains("\"exploded\" is not a cluster status"),
        "{error}"
    );
}

/// What the dispatcher's patrol asks once per interval for all of a replica's streams: which clusters have agent
/// tasks waiting (not those leased, not Terraform's), and which held certificates may no longer be used.
#[tokio::test]
async fn the_patrol_finds_waiting_tasks_and_refused_certificates_in_one_query_each() {
    let q = queue("queue_patrol").await;
    let elsewhere = Uuid::new_v4();
    let clusters = [q.cluster_id, elsewhere];
    q.insert(TaskSpec::TerraformDrift, 3).await;
    let waiting = || {
        q.store
            .clusters_with_pending_tasks(&clusters, TaskKind::AGENT)
    };
    assert!(
        waiting().await.unwrap().is_empty(),
        "Terraform tasks do not wake agents"
    );
    q.insert(apply("a"), 3).await;
    assert_eq!(waiting().await.unwrap(), vec![q.cluster_id]);
    assert_eq!(q.lease(10, Duration::from_secs(60)).await.len(), 1);
    assert!(
        waiting().await.unwrap().is_empty(),
        "a leased task waits for no one"
    );

    let now = chrono::Utc::now();
    let valid = NewCertificate {
        serial: "0a",
        not_before: now,
        not_after: now + chrono::Duration::hours(1),
    };
    q.store
        .record_certificate(q.cluster_id, &valid, Issuance::Bootstrap)
        .await
        .unwrap();
    let held = [
        (q.cluster_id, "0a".to_string()),
        (q.cluster_id, "0b".to_string()),
        (elsewhere, "0a".to_string()),
    ];
    let reasons = |refused: Vec<RefusedCertificate>| -> Vec<(Uuid, String, String)> {
        let mut reasons: Vec<_> = refused
            .into_iter()
            .map(|r| (r.cluster_id, r.serial, r.reason))
            .collect();
        reasons.sort();
        reasons
    };
    let not_ours = "certificate was not issued to this cluster".to_string();
    assert_eq!(
        reasons(q.store.certificate_refusals(&held).await.unwrap()),
        {
            let mut expected = vec![
                (q.cluster_id, "0b".to_string(), not_ours.clone()),
                (elsewhere, "0a".to_string(), not_ours),
            ];
            expected.sort();
            expected
        }
    );
    assert!(q.store.revoke_agent(q.cluster_id).await.unwrap());
    assert_eq!(
        reasons(q.store.certificate_refusals(&held[..1]).await.unwrap()),
        vec![(
            q.cluster_id,
            "0a".to_string(),
            "certificate was revoked".to_string()
        )]
    );
}

/// A heartbeat is one statement: the cluster's status and versions, the round trip measured since the previous
/// heartbeat folded into the smoothed value, and the session marked seen.
#[tokio::test]
async fn a_heartbeat_records_the_round_trip_and_keeps_the_session_connected() {
    let q = queue("queue_heartbeat").await;
    let session = q
        .store
        .open_session("replica-a", q.cluster_id, "0a", "test", None)
        .await
        .unwrap();
    let beat = |rtt_ms: Option<f64>| Heartbeat {
        agent_version: "1.2.3".into(),
        kubernetes_version: "v1.37.2".into(),
        node_count: 3,
        kubernetes_reachable: true,
        kubernetes_error: None,
        rtt_ms,
    };
    let last_seen = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT last_seen_at FROM agent_sessions WHERE id = $1",
        )
        .bind(session)
        .fetch_one(q.store.pool())
        .await
        .unwrap()
    };
    let opened = last_seen().await;
    for (rtt, smoothed) in [
        (None, None),
        (Some(100.0), Some(100.0)),
        (None, Some(100.0)),
        (Some(20.0), Some(80.0)),
    ] {
        let selection = q
            .store
            .record_heartbeats(&[(q.cluster_id, session, beat(rtt))])
            .await
            .unwrap()
            .remove(0);
        assert!(selection.is_some(), "the cluster exists");
        let cluster = q.store.cluster(q.cluster_id).await.unwrap();
        assert_eq!(
            cluster.agent.rtt_ms, smoothed,
            "after a heartbeat with {rtt:?}"
        );
        assert_eq!(cluster.status, ClusterStatus::Ready);
        assert_eq!(cluster.agent.node_count, Some(3));
        assert!(cluster.agent.connected);
    }
    assert!(last_seen().await > opened, "the session was marked seen");
}

#[tokio::test]
async fn retention_deletes_old_finished_tasks_but_keeps_open_recent_and_still_referenced_ones() {
    let q = queue("queue_retention").await;
    let finish = |id: Uuid| {
        let q = &q;
        async move {
            let leased = q.lease(1, Duration::from_secs(60)).await;
            assert_eq!(
                leased.first().map(|t| t.0),
                Some(id),
                "the task to finish is next"
            );
            q.complete(id, leased[0].1, true, false).await;
            assert_eq!(q.state(id).await, TaskState::Succeeded);
        }
    };
    let old = q.insert(apply("old"), 3).await;
    finish(old).await;
    let recent = q.insert(apply("recent"), 3).await;
    finish(recent).await;
    let parent = q.insert(apply("parent"), 3).await;
    finish(parent).await;
    let mut follow_up = q.new_task(apply("child"), 3, None);
    follow_up.parent_id = Some(parent);
    let TaskInsert::Created(child) = q.store.insert_task(follow_up).await.unwrap() else {
        panic!("a new task")
    };
    finish(child.id).await;
    let demo = q.demo("kept").await;
    let (_, steps) = q.store.demo_with_steps(demo.id).await.unwrap();
    let step_task = q.insert(apply("step"), 3).await;
    finish(step_task).await;
    sqlx::query("UPDATE demo_steps SET task_id = $1 WHERE id = $2")
        .bind(step_task)
        .bind(steps[3].id)
        .execute(q.store.pool())
        .await
        .unwrap();
    let open = q.insert(apply("open"), 3).await;
    // Everything but `recent` finished (or, for `open`, was created) 40 days ago, `old` first.
    sqlx::query(
        "UPDATE tasks SET created_at = now() - interval '40 days',
             finished_at = CASE WHEN finished_at IS NULL THEN NULL
                                WHEN id = $1 THEN now() - interval '41 days' ELSE now() - interval '40 days' END
         WHERE id <> $2",
    )
    .bind(old)
    .bind(recent)
    .execute(q.store.pool())
    .await
    .unwrap();
    let events_of_old = q.store.task_events(old).await.unwrap();
    assert!(!events_of_old.is_empty(), "a finished task has events");
    let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(30);

    assert_eq!(
        q.store.prune_finished_tasks(cutoff, 1).await.unwrap(),
        1,
        "a batch holds at most the limit"
    );
    assert!(
        matches!(q.store.task(old).await, Err(StoreError::NotFound { .. })),
        "the oldest goes first"
    );
    let left_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_events WHERE task_id = $1")
            .bind(old)
            .fetch_one(q.store.pool())
            .await
            .unwrap();
    assert_eq!(left_events, 0, "its events went with it");

    assert_eq!(
        q.store.prune_finished_tasks(cutoff, 100).await.unwrap(),
        1,
        "only the follow-up task: its parent is still pointed at, the step's task is the step's record"
    );
    assert!(matches!(
        q.store.task(child.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        q.store.prune_finished_tasks(cutoff, 100).await.unwrap(),
        1,
        "the parent, once its follow-up is gone"
    );
    assert!(matches!(
        q.store.task(parent).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(q.store.prune_finished_tasks(cutoff, 100).await.unwrap(), 0);
    for kept in [recent, step_task, open] {
        q.store.task(kept).await.unwrap();
    }
    assert_eq!(q.state(open).await, TaskState::Pending);
}

fn completion(success: bool, retryable: bool) -> TaskCompletion {
    TaskCompletion {
        success,
        error: (!success).then(|| "it broke".to_owned()),
        objects: Vec::new(),
        retryable,
        fails_cluster: None,
    }
}

#[tokio::test]
async fn one_batch_leases_for_many_streams_and_records_many_results_each_under_its_own_lease() {
    let q = queue("queue_batches").await;
    let region_id = q.store.cluster(q.cluster_id).await.unwrap().region_id;
    let other = q
        .store
        .insert_cluster(NewCluster {
            region_id,
            name: "eu-2".into(),
            role: ClusterRole::User,
            api_endpoint: None,
            provision_spec: None,
        })
        .await
        .unwrap()
        .id;
    let mut mine = Vec::new();
    for namespace in ["a", "b", "c"] {
        mine.push(q.insert(apply(namespace), 3).await);
    }
    let mut theirs = Vec::new();
    for namespace in ["x", "y"] {
        let mut task = q.new_task(apply(namespace), 1, None);
        task.cluster_id = other;
        q.signer.seal(&mut task).unwrap();
        theirs.push(q.store.insert_task(task).await.unwrap());
    }
    let mut theirs: Vec<Uuid> = theirs
        .into_iter()
        .map(|inserted| match inserted {
            TaskInsert::Created(task) => task.id,
            TaskInsert::Existing(_) => panic!("a task without a key is always new"),
        })
        .collect();
    let sessions = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let requests = [
        StreamLease {
            cluster_id: q.cluster_id,
            session_id: sessions[0],
            room: 2,
        },
        StreamLease {
            cluster_id: other,
            session_id: sessions[1],
            room: 5,
        },
        // A second stream of the first cluster in the same batch gets what the first left.
        StreamLease {
            cluster_id: q.cluster_id,
            session_id: sessions[2],
            room: 2,
        },
    ];
    let leased = q
        .store
        .lease_tasks_for_streams(&requests, TaskKind::AGENT, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        leased.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 2, 1],
        "each stream within its room, every task once"
    );
    for (request, tasks) in requests.iter().zip(&leased) {
        for task in tasks {
            assert_eq!(
                (task.cluster_id, task.session_id),
                (request.cluster_id, request.session_id)
            );
        }
    }
    let ids = |tasks: &[&control_plane::store::LeasedTask]| {
        let mut ids: Vec<Uuid> = tasks.iter().map(|task| task.id).collect();
        ids.sort();
        ids
    };
    mine.sort();
    theirs.sort();
    assert_eq!(
        ids(&leased[0].iter().chain(&leased[2]).collect::<Vec<_>>()),
        mine
    );
    assert_eq!(ids(&leased[1].iter().collect::<Vec<_>>()), theirs);
    let lease_of = |task: &control_plane::store::LeasedTask| LeaseRef {
        cluster_id: task.cluster_id,
        task_id: task.id,
        lease_id: task.lease_id,
    };
    let (a, b, c) = (
        lease_of(&leased[0][0]),
        lease_of(&leased[0][1]),
        lease_of(&leased[2][0]),
    );
    let (x, y) = (lease_of(&leased[1][0]), lease_of(&leased[1][1]));

    let stale = LeaseRef {
        lease_id: Uuid::new_v4(),
        ..c
    };
    assert_eq!(
        q.store
            .mark_running_many(&[a, stale, b, x, y])
            .await
            .unwrap(),
        [true, false, true, true, true]
    );
    assert_eq!(q.state(c.task_id).await, TaskState::Leased);
    assert!(q.accept(c.task_id, c.lease_id).await);

    let wrong_cluster = LeaseRef {
        cluster_id: other,
        ..c
    };
    let states = q
        .store
        .complete_tasks(&[
            (a, completion(true, false)),
            // The same lease reported twice in one batch counts once.
            (a, completion(false, false)),
            (b, completion(false, true)),
            (wrong_cluster, completion(true, false)),
            (x, completion(false, false)),
            (y, completion(true, false)),
        ])
        .await
        .unwrap();
    assert_eq!(
        states,
        [
            Some(TaskState::Succeeded),
            None,
            Some(TaskState::Pending),
            None,
            Some(TaskState::Failed),
            Some(TaskState::Succeeded),
        ]
    );
    assert_eq!(q.state(a.task_id).await, TaskState::Succeeded);
    assert_eq!(q.state(b.task_id).await, TaskState::Pending);
    assert_eq!(q.state(c.task_id).await, TaskState::Running);
    let failed = q.store.task(x.task_id).await.unwrap();
    assert_eq!(
        (
            failed.state,
            failed.error.as_deref(),
            failed.finished_at.is_some()
        ),
        (TaskState::Failed, Some("it broke"), true)
    );
    let last_event = |events: Vec<control_plane::store::TaskEvent>| {
        let event = events.last().unwrap();
        format!("{}: {}", event.kind, event.message)
    };
    assert_eq!(
        last_event(q.store.task_events(b.task_id).await.unwrap()),
        "pending: failed, will retry: it broke"
    );
    assert_eq!(
        last_event(q.store.task_events(a.task_id).await.unwrap()),
        "succeeded: succeeded"
    );
    // The retried task is leased again under a new lease, as its second attempt.
    let [(again, new_lease, attempt)] = q.lease(5, Duration::from_secs(60)).await[..] else {
        panic!("the retried task is leased again")
    };
    assert_eq!((again, attempt), (b.task_id, 2));
    assert_ne!(new_lease, b.lease_id);
}
