//! The AWS Terraform code run for real: the `hashicorp/aws` provider built from its Go module (a filesystem mirror
//! from `scripts/build-providers.sh`) against moto, an emulated AWS behind a proxy on loopback (`harness::aws`), with
//! AWS's real host names and no endpoint overridden. The VPC and S3
//! modules are applied, checked through the emulator's own API, re-planned without changes and destroyed; the
//! region stack is planned and applied by the control plane's provisioner as a user's AWS region would be.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// The filesystem mirror holding the providers; `scripts/test.sh` sets it.
fn provider_mirror() -> PathBuf {
    std::env::var_os("EDGEFLEET_TERRAFORM_PROVIDER_MIRROR")
        .map(PathBuf::from)
        .expect(
            "EDGEFLEET_TERRAFORM_PROVIDER_MIRROR is not set: it names the mirror scripts/build-providers.sh prints",
        )
}

/// A Terraform root in a copy of the repository's `modules/` and `terraform/`, run with the mirror and the
/// emulator's endpoint and credentials in the child's environment only.
struct Root {
    dir: PathBuf,
    cli_config: PathBuf,
    _copy: tempfile::TempDir,
}

impl Root {
    fn new(path_in_repo: &str) -> anyhow::Result<Root> {
        let copy = tempfile::tempdir()?;
        for part in ["modules", "terraform"] {
            copy_dir(
                &harness::workspace_root().join(part),
                &copy.path().join(part),
            )?;
        }
        let cli_config = copy.path().join("mirror.tfrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path = {:?}\n  }}\n}}\n",
                provider_mirror().to_string_lossy()
            ),
        )?;
        Ok(Root {
            dir: copy.path().join(path_in_repo),
            cli_config,
            _copy: copy,
        })
    }

    /// Runs `terraform <args>`; returns stdout and the exit code, or fails with stderr when the code is not in `ok`.
    fn run(&self, args: &[&str], ok: &[i32]) -> anyhow::Result<(String, i32)> {
        let aws = harness::aws();
        let output = Command::new("terraform")
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(aws.client_env())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_ACCESS_KEY_ID", aws.access_key())
            .env("AWS_SECRET_ACCESS_KEY", aws.secret_key())
            .env("AWS_REGION", aws.region())
            .output()
            .context("running terraform")?;
        let code = output.status.code().unwrap_or(-1);
        if !ok.contains(&code) {
            bail!(
                "terraform {} exited with {code}:\n{}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok((String::from_utf8(output.stdout)?, code))
    }

    fn init_and_apply(&self, vars: &[String]) -> anyhow::Result<Value> {
        self.run(&["init", "-no-color"], &[0])?;
        let mut apply = vec!["apply", "-auto-approve", "-no-color"];
        apply.extend(vars.iter().map(String::as_str));
        self.run(&apply, &[0])?;
        let (outputs, _) = self.run(&["output", "-json"], &[0])?;
        Ok(serde_json::from_str(&outputs)?)
    }

    /// `plan -detailed-exitcode` after an apply: 0 when the provider reads back exactly what it created.
    fn assert_no_changes(&self, vars: &[String]) -> anyhow::Result<()> {
        let mut plan = vec!["plan", "-detailed-exitcode", "-no-color"];
        plan.extend(vars.iter().map(String::as_str));
        let (text, code) = self.run(&plan, &[0, 2])?;
        if code != 0 {
            bail!("a plan right after the apply wants changes:\n{text}");
        }
        Ok(())
    }

    fn destroy(&self, vars: &[String]) -> anyhow::Result<()> {
        let mut destroy = vec!["destroy", "-auto-approve", "-no-color"];
        destroy.extend(vars.iter().map(String::as_str));
        self.run(&destroy, &[0])?;
        Ok(())
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".terraform" || name == ".terraform.lock.hcl" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(&name))?;
        } else {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

const EC2: &str = "ec2.us-east-1.amazonaws.com";

/// An EC2 query against the emulator: its status and body.
fn ec2_call(query: &str) -> (u16, String) {
    harness::aws()
        .call(
            "ec2",
            EC2,
            "POST",
            "/",
            Some(&format!("Version=2016-11-15&{query}")),
        )
        .unwrap()
}

/// An EC2 query that must answer 200; returns the body.
fn ec2(query: &str) -> String {
    let (status, body) = ec2_call(query);
    assert_eq!(status, 200, "EC2 {query}: {body}");
    body
}

fn s3(path_and_query: &str) -> (u16, String) {
    harness::aws()
        .call("s3", "s3.amazonaws.com", "GET", path_and_query, None)
        .unwrap()
}

/// An S3 request that must answer 200; returns the body.
fn s3_ok(path_and_query: &str) -> String {
    let (status, body) = s3(path_and_query);
    assert_eq!(status, 200, "S3 {path_and_query}: {body}");
    body
}

fn output<'a>(outputs: &'a Value, name: &str) -> &'a Value {
    &outputs[name]["value"]
}

#[test]
#[ignore = "needs the hashicorp/aws provider mirror and moto: scripts/test-cloud.sh runs it"]
fn vpc_module_applies_reads_back_unchanged_and_destroys() {
    let root = Root::new("modules/aws/vpc").unwrap();
    let vars = [
        "-var=name=edgefleet-vpc-test".to_string(),
        "-var=cidr_block=10.20.0.0/16".to_string(),
        r#"-var=availability_zones=["us-east-1a","us-east-1b"]"#.to_string(),
        "-var=eks_cluster_name=edgefleet-vpc-test".to_string(),
    ];
    let outputs = root.init_and_apply(&vars).unwrap();
    let vpc_id = output(&outputs, "vpc_id").as_str().unwrap().to_string();
    assert!(vpc_id.starts_with("vpc-"), "{outputs}");

    let vpc = ec2(&format!("Action=DescribeVpcs&VpcId.1={vpc_id}"));
    assert!(vpc.contains("<cidrBlock>10.20.0.0/16</cidrBlock>"), "{vpc}");
    assert!(vpc.contains("<value>edgefleet-vpc-test</value>"), "{vpc}");

    // Public subnets from index 0, private ones from index 8, /20 each (newbits 4), one of each per zone.
    let subnets = ec2(&format!(
        "Action=DescribeSubnets&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc_id}"
    ));
    for cidr in [
        "10.20.0.0/20",
        "10.20.16.0/20",
        "10.20.128.0/20",
        "10.20.144.0/20",
    ] {
        assert!(
            subnets.contains(&format!("<cidrBlock>{cidr}</cidrBlock>")),
            "{cidr} missing: {subnets}"
        );
    }
    assert_eq!(subnets.matches("<subnetId>").count(), 4, "{subnets}");
    assert!(
        subnets.contains("<key>kubernetes.io/cluster/edgefleet-vpc-test</key>"),
        "{subnets}"
    );

    let nat = ec2(&format!(
        "Action=DescribeNatGateways&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc_id}"
    ));
    assert_eq!(
        nat.matches("<natGatewayId>").count(),
        1,
        "one NAT gateway: {nat}"
    );
    let nat_id = between(&nat, "<natGatewayId>", "</natGatewayId>");
    // The private subnets' default route leaves through that NAT gateway.
    let routes = ec2(&format!(
        "Action=DescribeRouteTables&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc_id}"
    ));
    assert!(
        routes.contains(&format!("<natGatewayId>{nat_id}</natGatewayId>")),
        "{routes}"
    );
    assert_eq!(
        output(&outputs, "private_subnet_ids")
            .as_array()
            .unwrap()
            .len(),
        2
    );

    root.assert_no_changes(&vars).unwrap();
    root.destroy(&vars).unwrap();
    let (status, body) = ec2_call(&format!("Action=DescribeVpcs&VpcId.1={vpc_id}"));
    assert!(
        status == 400 && body.contains("InvalidVpcID.NotFound"),
        "the VPC is gone after destroy: HTTP {status} {body}"
    );
}

#[test]
#[ignore = "needs the hashicorp/aws provider mirror and moto: scripts/test-cloud.sh runs it"]
fn s3_module_applies_a_private_versioned_encrypted_bucket_and_destroys_it() {
    let root = Root::new("modules/aws/s3").unwrap();
    let vars = ["-var=bucket=edgefleet-artifacts-test".to_string()];
    let outputs = root.init_and_apply(&vars).unwrap();
    assert_eq!(output(&outputs, "bucket"), "edgefleet-artifacts-test");

    let versioning = s3_ok("/edgefleet-artifacts-test?versioning");
    assert!(
        versioning.contains("<Status>Enabled</Status>"),
        "{versioning}"
    );
    let encryption = s3_ok("/edgefleet-artifacts-test?encryption");
    assert!(
        encryption.contains("<SSEAlgorithm>AES256</SSEAlgorithm>"),
        "{encryption}"
    );
    let block = s3_ok("/edgefleet-artifacts-test?publicAccessBlock");
    for setting in [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ] {
        assert!(
            block.contains(&format!("<{setting}>true</{setting}>")),
            "{setting}: {block}"
        );
    }
    let lifecycle = s3_ok("/edgefleet-artifacts-test?lifecycle");
    assert!(
        lifecycle.contains("<NoncurrentDays>90</NoncurrentDays>"),
        "{lifecycle}"
    );

    root.assert_no_changes(&vars).unwrap();
    root.destroy(&vars).unwrap();
    let (status, body) = s3("/edgefleet-artifacts-test?versioning");
    assert_eq!(status, 404, "the bucket is gone after destroy: {body}");
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap();
    let to = text[from..].find(end).unwrap() + from;
    &text[from..to]
}

#[tokio::test]
#[ignore = "needs the hashicorp/aws provider mirror and moto: scripts/test-cloud.sh runs it"]
async fn the_provisioner_plans_an_aws_region_with_the_cloud_account_keys_in_terraforms_environment_only()
 {
    let aws = harness::aws();
    let terraform_env: serde_json::Map<String, Value> = aws
        .client_env()
        .into_iter()
        .map(|(name, value)| (name.to_string(), Value::String(value)))
        .collect();
    let stack = e2e::Stack::start(e2e::StackOptions {
        provisioning: true,
        provisioning_overrides: serde_json::json!({
            "provider_mirror": provider_mirror(),
            "terraform_env": terraform_env,
        })
        .as_object()
        .unwrap()
        .clone(),
        cluster: false,
        ..e2e::StackOptions::default()
    })
    .await
    .unwrap();
    // The emulator takes any keys. An AWS account's keys also open its state bucket (docs/provisioning.md), which
    // here is the harness's S3 server, so the account gets that server's keys.
    let s3 = harness::s3();
    let cloud = stack
        .api
        .post(
            "/clouds",
            &serde_json::json!({"name": "aws-emulated", "provider": "aws", "credentials": {
                "access_key_id": s3.access_key(), "secret_access_key": s3.secret_key()}}),
        )
        .await
        .unwrap();
    let region = stack
        .api
        .post(
            "/regions",
            &serde_json::json!({"cloud_account_id": cloud["id"], "code": "us-east-1",
                                "display_name": "US East (emulated)"}),
        )
        .await
        .unwrap();
    let created = stack
        .api
        .post(
            "/clusters",
            &serde_json::json!({"region_id": region["id"], "name": "aws-emu", "plan_only": true,
                "provision": {"variables": {"availability_zones": ["us-east-1a", "us-east-1b"]}}}),
        )
        .await
        .unwrap();
    assert_eq!(created["task"]["kind"], "terraform_plan");
    let plan = stack
        .wait_task(
            created["task"]["id"].as_str().unwrap(),
            std::time::Duration::from_secs(300),
        )
        .await
        .unwrap();
    assert_eq!(plan["state"], "succeeded", "{plan}");
    let summary = &plan["output"]["plan"];
    // 14 network resources (VPC, gateway, EIP, NAT, 4 subnets, 2 route tables, 4 associations), 8 for EKS (2 roles,
    // 4 policy attachments, cluster, node group) and 6 for the bucket; planning already calls the emulated STS
    // (the account id in the bucket's name).
    assert_eq!(summary["counts"]["create"], 28, "{summary}");
    assert_eq!(summary["text"], "28 to add, 0 to change, 0 to destroy");
    let addresses: Vec<&str> = summary["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|change| change["address"].as_str())
        .collect();
    for address in [
        "module.vpc.aws_nat_gateway.this[0]",
        "module.cluster.aws_eks_cluster.this",
        "module.cluster.aws_eks_node_group.this",
        "module.bucket[0].aws_s3_bucket.this",
    ] {
        assert!(addresses.contains(&address), "{address}: {addresses:?}");
    }
    let log = stack.control_plane.log_text();
    assert!(
        !log.contains(s3.secret_key()),
        "the cloud account's secret key stays out of the control plane's log"
    );
    let cluster = stack
        .api
        .get(&format!("/clusters/{}", created["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(cluster["status"], "planned", "{cluster}");
}
