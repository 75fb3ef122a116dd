//! Terraform's S3 backend against `s3-server`: state storage, `use_lockfile` locking, and destroy.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

const STATE_KEY: &str = "clusters/demo/terraform.tfstate";
/// init, apply and destroy of one built-in resource take a few seconds; this is for a busy CI machine.
const TERRAFORM_TIMEOUT: Duration = Duration::from_secs(180);

/// One `terraform_data` resource, replaced on every apply with a new `run`, whose create-time command
/// can be held open by the test: it writes `<gate>/started-<run>` and waits for `<gate>/release`.
const STACK: &str = r#"
terraform {
  backend "s3" {}
}

variable "run" {
  type = string
}

variable "gate" {
  type = string
}

resource "terraform_data" "demo" {
  input            = var.run
  triggers_replace = [var.run]

  provisioner "local-exec" {
    command = "touch '${var.gate}/started-${var.run}' && while [ ! -e '${var.gate}/release' ]; do sleep 0.1; done"
  }
}

output "run" {
  value = terraform_data.demo.output
}
"#;

struct Stack {
    dir: PathBuf,
    gate: PathBuf,
}

impl Stack {
    /// Writes the root module and a backend configuration for `bucket` into the test's directory.
    fn new(bucket: &str) -> anyhow::Result<Stack> {
        let s3 = harness::s3();
        let dir = harness::test_dir().join("stack");
        let gate = harness::test_dir().join("gate");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&gate)?;
        std::fs::write(dir.join("main.tf"), STACK)?;
        // Credentials are not in here: they reach Terraform through its environment only.
        let backend = format!(
            r#"bucket                      = "{bucket}"
key                         = "{STATE_KEY}"
region                      = "{region}"
endpoints                   = {{ s3 = "{endpoint}" }}
use_path_style              = true
use_lockfile                = true
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
"#,
            region = s3.region(),
            endpoint = s3.endpoint(),
        );
        std::fs::write(dir.join("backend.hcl"), backend)?;
        Ok(Stack { dir, gate })
    }

    /// `terraform <args>` in the stack's directory, with the S3 credentials and nothing from the
    /// machine's own AWS or Terraform configuration.
    fn terraform(&self, args: &[&str]) -> Command {
        let s3 = harness::s3();
        let mut command = Command::new("terraform");
        command
            .args(args)
            .current_dir(&self.dir)
            .env("AWS_ACCESS_KEY_ID", s3.access_key())
            .env("AWS_SECRET_ACCESS_KEY", s3.secret_key())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("TF_IN_AUTOMATION", "1")
            // No upgrade check: these machines have no way out, and it would only add a timeout.
            .env("CHECKPOINT_DISABLE", "1");
        command
    }

    /// `-var` arguments for run `run` (also the name of the file that tells the test it started).
    fn vars(&self, run: &str) -> [String; 4] {
        [
            "-var".to_owned(),
            format!("run={run}"),
            "-var".to_owned(),
            format!("gate={}", self.gate.display()),
        ]
    }

    fn start_apply(&self, run: &str, extra_args: &[&str]) -> anyhow::Result<harness::Process> {
        let vars = self.vars(run);
        let mut args = vec!["apply", "-input=false", "-auto-approve", "-no-color"];
        args.extend(vars.iter().map(String::as_str));
        args.extend(extra_args);
        harness::Process::spawn(&format!("terraform-apply-{run}"), self.terraform(&args))
    }

    fn release(&self) -> anyhow::Result<()> {
        std::fs::write(self.gate.join("release"), b"")?;
        Ok(())
    }

    fn started(&self, run: &str) -> bool {
        self.gate.join(format!("started-{run}")).exists()
    }
}

/// Waits for `process` to exit, and fails with its output if it failed.
async fn succeeds(mut process: harness::Process) -> anyhow::Result<()> {
    let status = process.wait_for_exit(TERRAFORM_TIMEOUT).await?;
    if !status.success() {
        bail!(
            "{} failed ({status}); log {}:\n{}",
            process.name(),
            process.log_path().display(),
            process.log_text()
        );
    }
    Ok(())
}

async fn state(client: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<serde_json::Value> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(STATE_KEY)
        .send()
        .await
        .context("reading the state object")?;
    let bytes = object.body.collect().await?.to_vec();
    serde_json::from_slice(&bytes).context("parsing the state")
}

/// Whether the lock object `use_lockfile` creates beside the state exists.
async fn lock_exists(client: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<bool> {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(format!("{STATE_KEY}.tflock"))
        .send()
        .await;
    match head {
        Ok(_) => Ok(true),
        // Only "not found" means no lock; any other failure must not pass for it.
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found()) =>
        {
            Ok(false)
        }
        Err(error) => Err(error).context("looking for the lock object"),
    }
}

/// `type.name` of every resource in the state.
fn resource_addresses(state: &serde_json::Value) -> Vec<String> {
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|resource| {
            format!(
                "{}.{}",
                resource["type"].as_str().unwrap_or("?"),
                resource["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[tokio::test]
async fn state_lives_in_s3_and_the_lock_file_keeps_a_second_apply_out() -> anyhow::Result<()> {
    let bucket = harness::s3().create_bucket("terraform-state");
    let client = support::client();
    let stack = Stack::new(&bucket)?;

    succeeds(harness::Process::spawn(
        "terraform-init",
        stack.terraform(&[
            "init",
            "-input=false",
            "-no-color",
            "-backend-config=backend.hcl",
        ]),
    )?)
    .await?;

    // A first apply, released at once, stores state with the resource in S3.
    stack.release()?;
    succeeds(stack.start_apply("first", &[])?).await?;
    std::fs::remove_file(stack.gate.join("release"))?;
    let state_after_first = state(&client, &bucket).await?;
    assert_eq!(
        resource_addresses(&state_after_first),
        ["terraform_data.demo"]
    );
    assert_eq!(state_after_first["outputs"]["run"]["value"], "first");
    assert!(
        !lock_exists(&client, &bucket).await?,
        "the lock is released after an apply"
    );

    // While this apply holds the lock (its resource's command is waiting for the gate) ...
    let holder = stack.start_apply("holder", &[])?;
    harness::wait_until(
        "the lock holder's apply to reach its resource",
        TERRAFORM_TIMEOUT,
        Duration::from_millis(50),
        || async { stack.started("holder") },
    )
    .await?;
    assert!(
        lock_exists(&client, &bucket).await?,
        "a running apply holds the lock file"
    );

    // ... an apply that does not wait for the lock fails at once, touching nothing ...
    let mut refused = stack.start_apply("refused", &[])?;
    let status = refused.wait_for_exit(TERRAFORM_TIMEOUT).await?;
    assert!(!status.success(), "{}", refused.log_text());
    assert!(
        refused
            .log_text()
            .contains("Error acquiring the state lock"),
        "{}",
        refused.log_text()
    );
    assert!(!stack.started("refused"));

    // ... and one with -lock-timeout waits until the holder is done, then runs.
    let mut waiter = stack.start_apply("waiter", &["-lock-timeout=120s"])?;
    waiter
        .wait_for_line("Acquiring state lock", TERRAFORM_TIMEOUT)
        .await?;
    // Terraform says nothing more while it retries, so give it a moment to (wrongly) get through.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !stack.started("waiter"),
        "the waiter ran while the lock was held"
    );
    stack.release()?;
    succeeds(holder).await?;
    succeeds(waiter).await?;
    let state_after_waiter = state(&client, &bucket).await?;
    assert_eq!(state_after_waiter["outputs"]["run"]["value"], "waiter");
    let serial = |state: &serde_json::Value| state["serial"].as_u64().context("the state's serial");
    assert!(
        serial(&state_after_waiter)? > serial(&state_after_first)?,
        "every apply wrote a newer state"
    );

    // Destroy leaves a state without resources, still in S3.
    let vars = stack.vars("destroy");
    let mut destroy_args = vec!["destroy", "-input=false", "-auto-approve", "-no-color"];
    destroy_args.extend(vars.iter().map(String::as_str));
    succeeds(harness::Process::spawn(
        "terraform-destroy",
        stack.terraform(&destroy_args),
    )?)
    .await?;
    let state_after_destroy = state(&client, &bucket).await?;
    assert_eq!(
        resource_addresses(&state_after_destroy),
        Vec::<String>::new()
    );
    assert!(!lock_exists(&client, &bucket).await?);
    Ok(())
}
