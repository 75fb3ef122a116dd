//! The attack suite: what an operator, a viewer or a stranger might try against the REST API, each case
//! asserting the refusal (status and the field or reason it names) and that nothing changed in PostgreSQL.
//! Agent-port attacks (forged CSRs, reused tokens, certificates of another cluster) are in `spine.rs`
//! (`agents_are_refused_without_a_valid_identity`); Terraform input attacks in `provisioning.rs`
//! (`operators_cannot_choose_terraform_binaries_arguments_or_paths`); sign-in limits in `console_auth.rs`.

use e2e::api::field;
use e2e::{Stack, StackOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Rows of the tables an attack could change; compared before and after every case.
const WATCHED: &str = "SELECT (SELECT count(*) FROM tasks) || ',' || (SELECT count(*) FROM clusters) || ',' || \
     (SELECT count(*) FROM regions) || ',' || (SELECT count(*) FROM cloud_accounts) || ',' || \
     (SELECT count(*) FROM users) || ',' || (SELECT count(*) FROM api_tokens) || ',' || (SELECT count(*) FROM demos)";

struct Case {
    what: &'static str,
    /// `admin`, `operator`, `viewer` or `none`.
    who: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    status: StatusCode,
    /// Text the error body must contain (a field name, a rule).
    names: &'static str,
}

fn manifest_task(
    what: &'static str,
    who: &'static str,
    cluster: &str,
    manifest: &str,
    names: &'static str,
) -> Case {
    Case {
        what,
        who,
        method: Method::POST,
        path: format!("/clusters/{cluster}/tasks"),
        body: Some(json!({"kind": "apply", "manifest": manifest})),
        status: StatusCode::UNPROCESSABLE_ENTITY,
        names,
    }
}

fn deployment(namespace: &str, pod_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: x, namespace: {namespace}}}\nspec:\n  selector: {{matchLabels: {{app: x}}}}\n  template:\n    metadata: {{labels: {{app: x}}}}\n    spec: {pod_spec}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn attacks_are_refused_and_change_nothing() {
    let stack = Stack::start(StackOptions {
        cluster: false,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let target = stack.register_cluster("target").await.unwrap();
    let cluster = target.cluster_id.as_str();
    let token = |role: &str| {
        let api = stack.api.clone();
        let role = role.to_string();
        async move {
            let created = api
                .post(
                    "/api-tokens",
                    &json!({"name": format!("attacker-{role}"), "role": role}),
                )
                .await
                .unwrap();
            field(&created, "token").unwrap()
        }
    };
    let operator = token("operator").await;
    let viewer = token("viewer").await;
    let host_pod = |spec: &str| deployment("apps", spec);

    let mut cases = vec![
        // The apply policy: kinds no role may apply.
        manifest_task(
            "bind cluster-admin",
            "admin",
            cluster,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: own}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: User, name: mallory}]\n",
            "rule allowed-kinds",
        ),
        manifest_task(
            "a Role granting secrets",
            "operator",
            cluster,
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: apps}\nrules: [{apiGroups: [''], resources: [secrets], verbs: [get]}]\n",
            "rule allowed-kinds",
        ),
        manifest_task(
            "a CRD",
            "admin",
            cluster,
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n",
            "rule allowed-kinds",
        ),
        manifest_task(
            "a mutating webhook",
            "admin",
            cluster,
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: w}\n",
            "rule allowed-kinds",
        ),
        manifest_task(
            "a hostPath PersistentVolume",
            "admin",
            cluster,
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: root}\nspec: {hostPath: {path: /}}\n",
            "rule allowed-kinds",
        ),
        manifest_task(
            "a Secret",
            "operator",
            cluster,
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: apps}\n",
            "rule allowed-kinds",
        ),
        manifest_task(
            "a bare Pod",
            "operator",
            cluster,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: apps}\nspec: {containers: [{name: c, image: busybox}]}\n",
            "rule allowed-kinds",
        ),
        manifest_task(
            "a DaemonSet as operator",
            "operator",
            cluster,
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d, namespace: apps}\n",
            "needs an admin",
        ),
        // Protected namespaces, even for admins.
        manifest_task(
            "a Deployment in kube-system",
            "admin",
            cluster,
            &deployment("kube-system", "{containers: []}"),
            "rule protected-namespace",
        ),
        manifest_task(
            "a ConfigMap in the agent's namespace",
            "admin",
            cluster,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: edgefleet-system}\n",
            "rule protected-namespace",
        ),
        manifest_task(
            "the ServiceAccount of the agent",
            "admin",
            cluster,
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: edgefleet-agent, namespace: edgefleet-system}\n",
            "rule protected-namespace",
        ),
        manifest_task(
            "relabelling kube-system",
            "admin",
            cluster,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system, labels: {pod-security.kubernetes.io/enforce: privileged}}\n",
            "rule protected-namespace",
        ),
        manifest_task(
            "one bad document among good ones",
            "operator",
            cluster,
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: apps}}\n---\n{}",
                deployment("kube-public", "{containers: []}")
            ),
            "manifest[document 1]",
        ),
        // Pods that reach the node.
        manifest_task(
            "hostPID",
            "admin",
            cluster,
            &host_pod("{hostPID: true, containers: []}"),
            "hostPID",
        ),
        manifest_task(
            "hostNetwork",
            "operator",
            cluster,
            &host_pod("{hostNetwork: true, containers: []}"),
            "hostNetwork",
        ),
        manifest_task(
            "hostIPC",
            "operator",
            cluster,
            &host_pod("{hostIPC: true, containers: []}"),
            "hostIPC",
        ),
        manifest_task(
            "a hostPath volume",
            "admin",
            cluster,
            &host_pod("{volumes: [{name: root, hostPath: {path: /}}], containers: []}"),
            "volume root is a hostPath",
        ),
        manifest_task(
            "a privileged container",
            "admin",
            cluster,
            &host_pod(
                "{containers: [{name: c, image: busybox, securityContext: {privileged: true}}]}",
            ),
            "is privileged",
        ),
        manifest_task(
            "a privileged init container",
            "operator",
            cluster,
            &host_pod(
                "{initContainers: [{name: i, image: busybox, securityContext: {privileged: true}}], containers: []}",
            ),
            "container i is privileged",
        ),
        manifest_task(
            "CAP_SYS_ADMIN",
            "operator",
            cluster,
            &host_pod(
                "{containers: [{name: c, image: busybox, securityContext: {capabilities: {add: [CAP_SYS_ADMIN]}}}]}",
            ),
            "adds capability CAP_SYS_ADMIN",
        ),
        manifest_task(
            "a host port",
            "operator",
            cluster,
            &host_pod(
                "{containers: [{name: c, image: busybox, ports: [{containerPort: 22, hostPort: 22}]}]}",
            ),
            "uses a host port",
        ),
        manifest_task(
            "a CronJob with hostPID",
            "operator",
            cluster,
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c, namespace: apps}\nspec:\n  schedule: '* * * * *'\n  jobTemplate: {spec: {template: {spec: {hostPID: true, containers: []}}}}\n",
            "hostPID",
        ),
    ];
    // Control characters, in every kind of text field.
    let region_body =
        json!({"cloud_account_id": target.cloud_id, "code": "evil\u{0}", "display_name": "x"});
    for (what, path, body, names) in [
        (
            "NUL in a region code",
            "/regions".to_string(),
            region_body,
            "code",
        ),
        (
            "a newline in a region's display name",
            "/regions".into(),
            json!({"cloud_account_id": target.cloud_id, "code": "ok-1", "display_name": "a\nINFO forged"}),
            "display_name",
        ),
        (
            "a newline in a token name",
            "/api-tokens".into(),
            json!({"name": "ci\n2026-12-02 INFO forged", "role": "viewer"}),
            "name",
        ),
        (
            "ANSI codes in a token name",
            "/api-tokens".into(),
            json!({"name": "ci\u{1b}[2J", "role": "viewer"}),
            "name",
        ),
        (
            "NUL in a task reason",
            format!("/clusters/{cluster}/tasks"),
            json!({"kind": "apply", "manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", "reason": "x\u{0}"}),
            "reason",
        ),
        (
            "NUL in a manifest",
            format!("/clusters/{cluster}/tasks"),
            json!({"kind": "apply", "manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: \"a\u{0}\"}\n"}),
            "manifest",
        ),
        (
            "NUL in a cloud tag",
            "/clouds".into(),
            json!({"name": "c2", "provider": "local", "tags": {"team": "a\u{0}"}}),
            "tags.team",
        ),
        (
            "ESC in a cloud tag key",
            "/clouds".into(),
            json!({"name": "c3", "provider": "local", "tags": {"a\u{1b}": "b"}}),
            "contains the control character U+001B",
        ),
        (
            "NUL in a cluster name",
            "/clusters".into(),
            json!({"region_id": target.region_id, "name": "a\u{0}"}),
            "name",
        ),
        (
            "NUL in a username",
            "/users".into(),
            json!({"username": "eve\u{0}", "password": "long-enough-password", "role": "viewer"}),
            "username",
        ),
        (
            "a newline in a demo name",
            "/demos".into(),
            json!({"name": "a\nb", "template": "static-web", "region": "auto"}),
            "name",
        ),
        (
            "NUL in an idempotency key",
            format!("/clusters/{cluster}/tasks"),
            json!({"kind": "apply", "manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", "idempotency_key": "k\u{0}"}),
            "idempotency_key",
        ),
    ] {
        cases.push(Case {
            what,
            who: "admin",
            method: Method::POST,
            path,
            body: Some(body),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            names,
        });
    }
    // Roles and authentication.
    let namespace = json!({"kind": "apply", "manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"});
    for (what, who, method, path, body, status, names) in [
        (
            "no token",
            "none",
            Method::POST,
            format!("/clusters/{cluster}/tasks"),
            Some(namespace.clone()),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "a made-up token",
            "forged",
            Method::POST,
            format!("/clusters/{cluster}/tasks"),
            Some(namespace.clone()),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "a viewer submits a task",
            "viewer",
            Method::POST,
            format!("/clusters/{cluster}/tasks"),
            Some(namespace.clone()),
            StatusCode::FORBIDDEN,
            "submit tasks",
        ),
        (
            "an operator creates an admin",
            "operator",
            Method::POST,
            "/users".to_string(),
            Some(json!({"username": "eve", "password": "long-enough-password", "role": "admin"})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "an operator mints an admin token",
            "operator",
            Method::POST,
            "/api-tokens".into(),
            Some(json!({"name": "mine", "role": "admin"})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "a viewer registers a cloud",
            "viewer",
            Method::POST,
            "/clouds".into(),
            Some(json!({"name": "c4", "provider": "local"})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "a viewer deletes the cluster",
            "viewer",
            Method::DELETE,
            format!("/clusters/{cluster}"),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "an operator reads the audit log",
            "operator",
            Method::GET,
            "/audit".into(),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "an operator revokes an agent",
            "operator",
            Method::POST,
            format!("/clusters/{cluster}/revoke-agent"),
            None,
            StatusCode::FORBIDDEN,
            "revoke agents",
        ),
    ] {
        cases.push(Case {
            what,
            who,
            method,
            path,
            body,
            status,
            names,
        });
    }
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let before = stack.postgres_query(WATCHED).unwrap();
    for case in &cases {
        let api = match case.who {
            "admin" => stack.api.clone(),
            "operator" => stack.api.with_token(operator.clone()),
            "viewer" => stack.api.with_token(viewer.clone()),
            "forged" => stack
                .api
                .with_token("efa_0000000000000000000000000000000000000000"),
            _ => stack.api.with_token(""),
        };
        let (status, body) = api
            .call(case.method.clone(), &case.path, case.body.as_ref())
            .await
            .unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.what);
        assert!(
            body.to_string().contains(case.names),
            "{}: the refusal must name {:?}: {body}",
            case.what,
            case.names
        );
        let after = stack.postgres_query(WATCHED).unwrap();
        assert_eq!(after, before, "{} changed something", case.what);
    }

    // What reached the log is escaped: no forged line, no escape sequence.
    let log = stack.control_plane.log_text();
    assert!(
        !log.lines()
            .any(|line| line.contains("INFO forged") && !line.contains("\\n")),
        "a forged line in the control plane's log"
    );
    assert!(
        !log.contains('\u{1b}'),
        "an escape sequence in the control plane's log"
    );

    // Defaults: API answers are neither cached nor sniffed.
    let response = reqwest::Client::new()
        .get(format!("{}/clusters", stack.api.base()))
        .bearer_auth(&stack.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

/// Signed tasks: someone with write access to PostgreSQL (but not the control plane's key file) alters a queued
/// task, moves another task's signed body, inserts a task signed with their own key, and drops the constraint to
/// insert an unsigned one. The agent, connecting afterwards, runs only the honest task.
#[tokio::test(flavor = "multi_thread")]
async fn tasks_altered_in_postgresql_are_refused_and_nothing_of_them_is_applied() {
    use agent_protocol::signing::SigningKey;
    use agent_protocol::{ApplySpec, TaskBody, task_body};

    let stack = Stack::start(StackOptions::default()).await.unwrap();
    // No agent yet, so every task stays pending while it is tampered with.
    let target = stack.register_cluster("tampered").await.unwrap();
    let cluster = target.cluster_id.clone();
    let submit = |manifest: String| {
        let api = stack.api.clone();
        let path = format!("/clusters/{cluster}/tasks");
        async move {
            let task = api
                .post(
                    &path,
                    &json!({"kind": "apply", "manifest": manifest, "wait_timeout_seconds": 0}),
                )
                .await
                .unwrap();
            field(&task, "id").unwrap()
        }
    };
    let config_map = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: signed}}\ndata: {{a: b}}\n"
        )
    };
    let honest = submit(format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: signed}}\n---\n{}",
        config_map("honest")
    ))
    .await;
    let altered = submit(config_map("innocent")).await;
    let moved = submit(config_map("moved")).await;

    // 1. Rewrite the manifest inside the signed body (same length, so the encoding stays valid).
    let hex = |text: &str| text.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    stack
        .postgres_query(&format!(
            "UPDATE tasks SET body = decode(replace(encode(body, 'hex'), '{}', '{}'), 'hex'),
                              payload = jsonb_set(payload, '{{manifest}}', to_jsonb(replace(payload->>'manifest', 'innocent', 'mallory1')))
             WHERE id = '{altered}'",
            hex("innocent"),
            hex("mallory1")
        ))
        .unwrap();
    // 2. Give a task the signed body and signature of another (honest) task.
    stack
        .postgres_query(&format!(
            "UPDATE tasks t SET body = h.body, signature = h.signature, signing_key_id = h.signing_key_id
             FROM tasks h WHERE h.id = '{honest}' AND t.id = '{moved}'"
        ))
        .unwrap();
    // 3. A task signed with the attacker's own key, correctly bound to the cluster and the task id.
    let attacker = SigningKey::from_pem(&SigningKey::generate_pem()).unwrap();
    let forged_id = uuid::Uuid::new_v4().to_string();
    let binding = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: mallory}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: User, name: mallory}]\n";
    let (body, signature) = attacker.sign_task(&TaskBody {
        cluster_id: cluster.clone(),
        task_id: forged_id.clone(),
        signed_at_unix: 0,
        spec: Some(task_body::Spec::Apply(ApplySpec {
            manifest_yaml: binding.into(),
            tier: agent_protocol::ApplyTier::Admin.into(),
            ..Default::default()
        })),
    });
    let insert = |id: &str, seal: Option<(&[u8], &[u8], &str)>| {
        let bytes = |b: &[u8]| {
            format!(
                "'\\x{}'::bytea",
                b.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        };
        let (body, signature, key_id) = match seal {
            Some((body, signature, key_id)) => {
                (bytes(body), bytes(signature), format!("'{key_id}'"))
            }
            None => ("NULL".into(), "NULL".into(), "NULL".into()),
        };
        format!(
            "INSERT INTO tasks (id, cluster_id, kind, payload, state, reason, created_by, max_attempts, body, signature, signing_key_id)
             VALUES ('{id}', '{cluster}', 'apply', '{{\"manifest\": \"\"}}', 'pending', 'injected', 'mallory', 1, {body}, {signature}, {key_id})"
        )
    };
    stack
        .postgres_query(&insert(
            &forged_id,
            Some((&body, &signature.signature, &signature.key_id)),
        ))
        .unwrap();
    // 4. An unsigned task: the database itself refuses it while the constraint stands...
    let unsigned_id = uuid::Uuid::new_v4().to_string();
    let refused = stack
        .postgres_query(&insert(&unsigned_id, None))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("agent_tasks_are_signed"), "{refused}");
    // ...and the control plane refuses to deliver it once an attacker dropped the constraint.
    stack
        .postgres_query("ALTER TABLE tasks DROP CONSTRAINT agent_tasks_are_signed")
        .unwrap();
    stack.postgres_query(&insert(&unsigned_id, None)).unwrap();

    let _agent = stack
        .start_agent(
            "agent-tampered",
            &cluster,
            e2e::AgentState::Dir(&stack.dir.join("agent-tampered")),
        )
        .await
        .unwrap();
    let wait = |id: String| {
        let stack = &stack;
        async move {
            stack
                .wait_task(&id, std::time::Duration::from_secs(90))
                .await
                .unwrap()
        }
    };
    assert_eq!(wait(honest.clone()).await["state"], "succeeded");
    for (id, expected) in [
        (
            altered,
            "the task was altered after it was signed".to_string(),
        ),
        (
            moved,
            format!("belongs to task {honest}, not to the assigned task"),
        ),
        (
            forged_id,
            format!(
                "signed with key {}, which this agent does not trust",
                attacker.id()
            ),
        ),
        (unsigned_id, "the task has no signature".to_string()),
    ] {
        let task = wait(id.clone()).await;
        assert_eq!(task["state"], "failed", "{task}");
        let error = task["error"].as_str().unwrap_or_default();
        assert!(error.contains(&expected), "task {id}: {error}");
    }
    let config_maps = stack
        .kubectl(&["get", "configmaps", "-n", "signed", "-o", "name"])
        .unwrap();
    assert!(config_maps.contains("configmap/honest"), "{config_maps}");
    for absent in ["innocent", "mallory1", "moved"] {
        assert!(
            !config_maps.contains(absent),
            "{absent} applied: {config_maps}"
        );
    }
    let bindings = stack
        .kubectl(&["get", "clusterrolebindings", "-o", "name"])
        .unwrap();
    assert!(!bindings.contains("mallory"), "{bindings}");
}
