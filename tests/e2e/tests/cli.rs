//! The `edgefleet` CLI, the built binary, against the real stack: login, listing, applying a manifest and
//! waiting for it, its logs, a demo deployed and deleted with `--wait`, and the exit codes and messages of what
//! goes wrong.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e::{Stack, StackOptions};

/// How long a test waits for something the stack does in the background.
const WAIT: std::time::Duration = std::time::Duration::from_secs(120);
use serde_json::{Value, json};

struct Cli {
    bin: PathBuf,
    config: PathBuf,
}

impl Cli {
    fn new(dir: &Path) -> Self {
        Self {
            bin: harness::workspace_bin("edgefleet").unwrap(),
            config: dir.join("cli").join("login.yaml"),
        }
    }

    /// Runs `edgefleet <args>` with only the saved login (no EDGEFLEET_URL/TOKEN from the test's environment).
    fn run(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .env_remove("EDGEFLEET_URL")
            .env_remove("EDGEFLEET_TOKEN")
            .env("EDGEFLEET_CLI_CONFIG", &self.config)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args, None, &[]);
        assert!(
            output.status.success(),
            "edgefleet {args:?}: {}",
            describe(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Runs a command that must fail with `code`; returns its standard error.
    fn fails(&self, code: i32, args: &[&str], env: &[(&str, &str)]) -> String {
        let output = self.run(args, None, env);
        assert_eq!(
            output.status.code(),
            Some(code),
            "edgefleet {args:?}: {}",
            describe(&output)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    /// Starts `edgefleet <args>` in the background, its standard output read line by line.
    fn spawn(&self, args: &[&str]) -> Tail {
        let child = tokio::process::Command::new(&self.bin)
            .args(args)
            .env_remove("EDGEFLEET_URL")
            .env_remove("EDGEFLEET_TOKEN")
            .env("EDGEFLEET_CLI_CONFIG", &self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Tail::new(child)
    }
}

/// A running command whose output a test reads as it comes; killed when dropped.
struct Tail {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    _child: tokio::process::Child,
}

impl Tail {
    fn new(mut child: tokio::process::Child) -> Self {
        use tokio::io::AsyncBufReadExt;
        let stdout = child.stdout.take().unwrap();
        Self {
            lines: tokio::io::BufReader::new(stdout).lines(),
            _child: child,
        }
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the command printed a line in time")
            .unwrap()
            .expect("the command is still running")
    }

    /// Reads lines until one contains `text`.
    async fn line_containing(&mut self, text: &str) -> String {
        loop {
            let line = self.next_line().await;
            if line.contains(text) {
                return line;
            }
        }
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_logs_in_applies_deploys_and_says_what_went_wrong() {
    let stack = Stack::start(StackOptions::default().with_templates())
        .await
        .unwrap();
    let (cluster, _agent) = stack.connected_cluster("cli-1").await.unwrap();
    let cli = Cli::new(&stack.dir);

    let completions = cli.ok(&["completions", "bash"]);
    assert!(completions.contains("_edgefleet()"), "{completions}");
    assert!(
        completions.contains("deploy"),
        "the subcommands are completed"
    );

    // Before logging in, every command says how to.
    let error = cli.fails(2, &["clusters", "list"], &[]);
    assert!(error.contains("not logged in"), "{error}");
    assert!(error.contains("edgefleet login --url"), "{error}");

    // A wrong token is refused at login and nothing is saved.
    let output = cli.run(
        &["login", "--url", stack.api.base(), "--token-stdin"],
        Some("efa_not-a-token\n"),
        &[],
    );
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    assert!(!cli.config.exists());
    let output = cli.run(
        &["login", "--url", stack.api.base(), "--token-stdin"],
        Some(&format!("{}\n", stack.admin_token)),
        &[],
    );
    assert!(output.status.success(), "{}", describe(&output));
    let mode = std::fs::metadata(&cli.config).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the saved token is readable by its owner only"
    );

    let clusters = cli.json(&["clusters", "list"]);
    let listed = clusters
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cli-1")
        .expect("the cluster is listed");
    assert_eq!(listed["id"], cluster.cluster_id.as_str());
    let table = cli.ok(&["clusters", "list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("cli-1") && table.contains("cli-1-region"),
        "{table}"
    );

    // Apply a manifest, wait for the task, and read its log.
    let manifest = stack.dir.join("namespace.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-the-cli\n",
    )
    .unwrap();
    let task = cli.json(&[
        "tasks",
        "apply",
        "-f",
        manifest.to_str().unwrap(),
        "--cluster",
        "cli-1",
        "--wait",
        "--idempotency-key",
        "cli-ns",
    ]);
    assert_eq!(task["state"], "succeeded", "{task}");
    let namespace = stack
        .kubectl(&["get", "namespace", "from-the-cli", "-o", "name"])
        .unwrap();
    assert_eq!(namespace.trim(), "namespace/from-the-cli");
    let task_id = task["id"].as_str().unwrap();
    // The agent's lines reach ClickHouse shortly after the result (batched): wait for them, then read them.
    let logs = harness::wait_until(
        "the task's log lines",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
        || async {
            let logs = cli.ok(&["tasks", "logs", task_id]);
            logs.contains("(Namespace from-the-cli) applied")
                .then_some(logs)
        },
    )
    .await
    .unwrap();
    assert!(logs.contains("applying 1 objects"), "{logs}");
    let detail = cli.ok(&["tasks", "get", task_id]);
    assert!(
        detail.contains("Namespace") && detail.contains("from-the-cli"),
        "{detail}"
    );

    // What goes wrong: the API's message and field, and an exit code for its kind.
    std::fs::write(&manifest, "apiVersion: v1\nmetadata:\n  name: x\n").unwrap();
    let error = cli.fails(
        2,
        &[
            "tasks",
            "apply",
            "-f",
            manifest.to_str().unwrap(),
            "--cluster",
            "cli-1",
        ],
        &[],
    );
    assert!(
        error.contains("manifest[document 0]: missing or empty `kind`"),
        "{error}"
    );
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: another\n",
    )
    .unwrap();
    let error = cli.fails(
        4,
        &[
            "tasks",
            "apply",
            "-f",
            manifest.to_str().unwrap(),
            "--cluster",
            "cli-1",
            "--idempotency-key",
            "cli-ns",
        ],
        &[],
    );
    assert!(error.contains("idempotency key"), "{error}");
    let error = cli.fails(3, &["clusters", "get", "nowhere"], &[]);
    assert!(error.contains("no cluster named \"nowhere\""), "{error}");
    let error = cli.fails(
        5,
        &["clusters", "list"],
        &[("EDGEFLEET_TOKEN", "efa_wrong")],
    );
    assert!(error.contains("edgefleet:"), "{error}");

    // A demo deployed and deleted, following the steps.
    let demo = cli.json(&[
        "demos",
        "deploy",
        "hello-cli",
        "--template",
        "static-web",
        "--region",
        "cli-1-region",
        "--wait",
    ]);
    assert_eq!(demo["status"], "online", "{demo}");
    assert!(
        demo["url"]
            .as_str()
            .unwrap()
            .starts_with("http://hello-cli.cli-1."),
        "{demo}"
    );
    let status = cli.ok(&["demos", "status", "hello-cli"]);
    assert!(
        status.contains("publish_url") && status.contains("succeeded"),
        "{status}"
    );

    // Its pod's log: searched, then followed live while the container prints more.
    let pod = stack.first_pod("demo-hello-cli").unwrap();
    let state_dir = stack.cluster.as_ref().unwrap().state_dir().to_path_buf();
    e2e::write_container_log(
        &state_dir,
        "demo-hello-cli",
        &pod,
        "demo",
        "INFO: serving\nERROR: shard 3 failed \x1b[31mred\x1b[0m\n",
    )
    .await
    .unwrap();
    let errors = harness::wait_until(
        "the demo's error line through the CLI",
        WAIT,
        std::time::Duration::from_millis(200),
        || async {
            let logs = cli.ok(&["demos", "logs", "hello-cli", "--level", "error"]);
            (!logs.is_empty()).then_some(logs)
        },
    )
    .await
    .unwrap();
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert!(
        errors.contains(&format!("{pod}/demo error")) && errors.contains("shard 3 failed"),
        "{errors}"
    );
    assert!(
        errors.contains("\\u{1b}[31mred") && !errors.contains('\x1b'),
        "the terminal escape is printed escaped: {errors:?}"
    );
    let found = cli.ok(&["demos", "logs", "hello-cli", "--grep", "SERVING"]);
    assert!(
        found.contains("INFO: serving") && !found.contains("shard"),
        "{found}"
    );
    let mut tail = cli.spawn(&["demos", "logs", "hello-cli", "-f", "-o", "json"]);
    // The demo's Kubernetes events (its ReplicaSet creating the pod...) are older than what its container wrote.
    let first = tail.line_containing(r#""stream":"container""#).await;
    assert!(
        first.contains("INFO: serving"),
        "stored lines come first: {first}"
    );
    e2e::write_container_log(
        &state_dir,
        "demo-hello-cli",
        &pod,
        "demo",
        "INFO: live line\n",
    )
    .await
    .unwrap();
    let live = tail.line_containing("INFO: live line").await;
    let live: Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["pod"], pod.as_str(), "{live}");
    drop(tail);

    // Changes roll out as versions, each followed to its end.
    let updated = cli.json(&["demos", "update", "hello-cli", "--replicas", "2", "--wait"]);
    assert_eq!(updated["version"], 2, "{updated}");
    assert_eq!(updated["status"], "online", "{updated}");
    let deployment: Value = serde_json::from_str(
        &stack
            .kubectl(&["get", "deployment", "-n", "demo-hello-cli", "-o", "json"])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        deployment["items"][0]["spec"]["replicas"], 2,
        "{deployment}"
    );
    let error = cli.fails(2, &["demos", "update", "hello-cli"], &[]);
    assert!(error.contains("nothing to change"), "{error}");
    let stopped = cli.json(&["demos", "stop", "hello-cli", "--wait"]);
    assert_eq!(stopped["status"], "offline", "{stopped}");
    assert!(stopped["url"].is_null(), "{stopped}");
    let started = cli.json(&["demos", "start", "hello-cli", "--wait"]);
    assert_eq!(started["status"], "online", "{started}");
    let rolled_back = cli.json(&[
        "demos",
        "rollback",
        "hello-cli",
        "--to-version",
        "1",
        "--wait",
    ]);
    assert_eq!(rolled_back["status"], "online", "{rolled_back}");
    let versions = cli.json(&["demos", "versions", "hello-cli"]);
    let replicas: Vec<&Value> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|version| &version["config"]["replicas"])
        .collect();
    assert_eq!(
        replicas,
        [&json!(1), &json!(2), &json!(0), &json!(2), &json!(1)],
        "{versions}"
    );
    let table = cli.ok(&["demos", "versions", "hello-cli"]);
    assert!(
        table.starts_with("VERSION") && table.contains("rollback"),
        "{table}"
    );
    assert_eq!(versions[0]["version"], 5, "{versions}");
    assert_eq!(versions[0]["reason"], "rollback to version 1", "{versions}");
    let error = cli.fails(
        2,
        &["demos", "rollback", "hello-cli", "--to-version", "40"],
        &[],
    );
    assert!(error.contains("has no version 40"), "{error}");
    let deleted = cli.json(&["demos", "delete", "hello-cli", "--wait"]);
    assert_eq!(deleted["status"], "closed", "{deleted}");
    let error = cli.fails(3, &["demos", "status", "hello-cli"], &[]);
    assert!(error.contains("no demo named \"hello-cli\""), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_registers_clouds_and_regions_joins_a_cluster_and_manages_access() {
    let stack = Stack::start(StackOptions::default().with_templates())
        .await
        .unwrap();
    let cli = Cli::new(&stack.dir);
    let output = cli.run(
        &["login", "--url", stack.api.base(), "--token-stdin"],
        Some(&format!("{}\n", stack.admin_token)),
        &[],
    );
    assert!(output.status.success(), "{}", describe(&output));

    // A cloud account's credentials come from a file and are never printed back.
    let credentials = stack.dir.join("aws.yaml");
    std::fs::write(
        &credentials,
        "access_key_id: AKIAEXAMPLE\nsecret_access_key: s3cr3t-never-shown\n",
    )
    .unwrap();
    let created = cli.ok(&[
        "clouds",
        "create",
        "lab-aws",
        "--provider",
        "aws",
        "--credentials-file",
        credentials.to_str().unwrap(),
        "--tag",
        "team=ml",
    ]);
    assert!(
        created.contains("lab-aws") && created.contains("secret_access_key"),
        "{created}"
    );
    let shown = cli.ok(&["clouds", "get", "lab-aws", "-o", "yaml"]);
    assert!(
        shown.contains("team: ml") && !shown.contains("s3cr3t-never-shown"),
        "{shown}"
    );
    std::fs::write(&credentials, "- s3cr3t-in-a-list\n").unwrap();
    let error = cli.fails(
        2,
        &[
            "clouds",
            "create",
            "broken",
            "--provider",
            "aws",
            "--credentials-file",
            credentials.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        error.contains("is not a map of credential fields") && !error.contains("s3cr3t"),
        "{error}"
    );
    let error = cli.fails(2, &["clouds", "create", "odd", "--provider", "mars"], &[]);
    assert!(error.contains("provider"), "{error}");

    // Regions: added disabled, then enabled; the account in use cannot go.
    cli.ok(&["clouds", "create", "lab", "--provider", "local"]);
    let region = cli.json(&[
        "regions",
        "create",
        "lab-1",
        "--cloud",
        "lab",
        "--display-name",
        "Lab one",
        "--disabled",
    ]);
    assert_eq!(region["enabled"], false, "{region}");
    let region = cli.json(&["regions", "enable", "lab-1"]);
    assert_eq!(region["enabled"], true, "{region}");
    let listed = cli.ok(&["regions", "list"]);
    assert!(listed.contains("Lab one"), "{listed}");
    let error = cli.fails(4, &["clouds", "delete", "lab"], &[]);
    assert!(error.contains("region"), "{error}");
    let deleted = cli.json(&["clouds", "delete", "lab-aws"]);
    assert_eq!(deleted["name"], "lab-aws");
    cli.fails(3, &["clouds", "get", "lab-aws"], &[]);
    let template = cli.json(&["templates", "get", "static-web"]);
    assert_eq!(template[0]["name"], "static-web", "{template}");
    let error = cli.fails(3, &["templates", "get", "no such/template"], &[]);
    assert!(error.contains("no template named"), "{error}");

    // Join: the cluster of a kubeconfig is registered and its agent installed there, connecting by itself.
    let kubeconfig = stack.kubeconfig.to_str().unwrap();
    let joined = cli.json(&[
        "clusters",
        "join",
        "edge-1",
        "--region",
        "lab-1",
        "--kubeconfig",
        kubeconfig,
        "--wait",
    ]);
    assert_eq!(joined["agent"]["connected"], true, "{joined}");
    assert_eq!(joined["region_code"], "lab-1", "{joined}");
    let deployment: Value = serde_json::from_str(
        &stack
            .kubectl(&[
                "get",
                "deployment",
                "edgefleet-agent",
                "-n",
                "edgefleet-system",
                "-o",
                "json",
                "--show-managed-fields",
            ])
            .unwrap(),
    )
    .unwrap();
    let managers: Vec<&str> = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["manager"].as_str())
        .collect();
    assert!(managers.contains(&"edgefleet-cli"), "{managers:?}");
    // Joining again installs the agent again under the same cluster.
    let again = cli.run(
        &[
            "clusters",
            "join",
            "edge-1",
            "--region",
            "lab-1",
            "--kubeconfig",
            kubeconfig,
            "-o",
            "json",
        ],
        None,
        &[],
    );
    assert!(again.status.success(), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("registered already"),
        "{}",
        describe(&again)
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["id"], joined["id"]);
    let error = cli.fails(
        2,
        &[
            "clusters",
            "join",
            "edge-2",
            "--region",
            "lab-1",
            "--kubeconfig",
            stack.dir.join("missing-kubeconfig").to_str().unwrap(),
        ],
        &[],
    );
    assert!(error.contains("cannot read kubeconfig"), "{error}");
    let clusters = cli.json(&["clusters", "list"]);
    assert!(
        !clusters.to_string().contains("edge-2"),
        "nothing is registered for an unusable kubeconfig: {clusters}"
    );

    // A bootstrap token by hand: the manifest for kubectl, or everything as JSON.
    cli.ok(&["clusters", "create", "edge-3", "--region", "lab-1"]);
    let manifest = cli.ok(&["clusters", "token", "edge-3", "--ttl", "10m"]);
    assert!(
        manifest.contains("kind: Deployment") && manifest.contains("edgefleet-agent-bootstrap"),
        "{manifest}"
    );
    let bundle = cli.json(&["clusters", "token", "edge-3"]);
    assert!(
        bundle["token"]
            .as_str()
            .is_some_and(|token| !token.is_empty()),
        "{bundle}"
    );
    let error = cli.fails(2, &["clusters", "token", "edge-3", "--ttl", "30s"], &[]);
    assert!(error.contains("ttl_seconds"), "{error}");
    let revoked = cli.json(&["clusters", "revoke-agent", "edge-1"]);
    assert_eq!(revoked["name"], "edge-1", "{revoked}");
    harness::wait_until(
        "the revoked agent's stream to close",
        WAIT,
        std::time::Duration::from_millis(200),
        || async {
            let cluster = cli.json(&["clusters", "get", "edge-1"]);
            (cluster["agent"]["connected"] == false).then_some(())
        },
    )
    .await
    .unwrap();
    let deleted = cli.json(&["clusters", "delete", "edge-3"]);
    assert_eq!(deleted["name"], "edge-3", "{deleted}");

    // Users and API tokens: a viewer's token reads but cannot change, and stops working once revoked.
    let user = cli.run(
        &["users", "create", "alice", "--role", "viewer", "-o", "json"],
        Some("a long enough password\n"),
        &[],
    );
    assert!(user.status.success(), "{}", describe(&user));
    let error = String::from_utf8(
        cli.run(
            &["users", "create", "bob", "--role", "viewer"],
            Some("short\n"),
            &[],
        )
        .stderr,
    )
    .unwrap();
    assert!(error.contains("password"), "{error}");
    let disabled = cli.json(&["users", "update", "alice", "--disable"]);
    assert_eq!(disabled["disabled"], true, "{disabled}");
    let users = cli.ok(&["users", "list"]);
    assert!(
        users.contains("alice") && users.contains("viewer"),
        "{users}"
    );
    let token = cli.json(&[
        "tokens",
        "create",
        "ci-reader",
        "--role",
        "viewer",
        "--ttl-days",
        "1",
    ]);
    let secret = token["token"].as_str().unwrap().to_owned();
    assert!(token["expires_at"].is_string(), "{token}");
    let as_viewer = [("EDGEFLEET_TOKEN", secret.as_str())];
    let output = cli.run(&["clusters", "list"], None, &as_viewer);
    assert!(output.status.success(), "{}", describe(&output));
    let error = cli.fails(5, &["regions", "disable", "lab-1"], &as_viewer);
    assert!(
        error.contains("operator") || error.contains("admin"),
        "{error}"
    );
    let listed = cli.ok(&["tokens", "list"]);
    assert!(
        listed.contains("ci-reader") && !listed.contains(&secret),
        "{listed}"
    );
    let revoked = cli.json(&["tokens", "revoke", "ci-reader"]);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    cli.fails(5, &["clusters", "list"], &as_viewer);
    cli.fails(3, &["tokens", "revoke", "ci-reader"], &[]);
}
