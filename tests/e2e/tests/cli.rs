//! The `edgefleet` CLI, the built binary, against the real stack: login, listing, applying a manifest and
//! waiting for it, its logs, a demo deployed and deleted with `--wait`, and the exit codes and messages of what
//! goes wrong.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e::{Stack, StackOptions};
use serde_json::Value;

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
    let deleted = cli.json(&["demos", "delete", "hello-cli", "--wait"]);
    assert_eq!(deleted["status"], "closed", "{deleted}");
    let error = cli.fails(3, &["demos", "status", "hello-cli"], &[]);
    assert!(error.contains("no demo named \"hello-cli\""), "{error}");
}
