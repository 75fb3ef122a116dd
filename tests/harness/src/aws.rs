//! An emulated AWS per test process: moto's proxy mode (EC2/VPC, IAM, STS, S3, EKS and more), for running the AWS
//! Terraform code with the real `hashicorp/aws` provider without a cloud account.
//!
//! Clients keep AWS's real host names and reach the emulator through `HTTPS_PROXY`, trusting moto's CA
//! (`AWS_CA_BUNDLE`): no endpoint is overridden, so even the host names the SDK derives itself (S3 Control's
//! `<account>.s3-control...`) reach it. Moto answers as AWS would but does not check signatures, and picks the
//! service by the credential scope of the `Authorization` header, so [`EmulatedAws::call`] reads the emulator's
//! state with plain HTTP to the proxy. AWS managed policies are loaded (`MOTO_IAM_LOAD_MANAGED_POLICIES`),
//! since the EKS module attaches them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::ports::free_port;
use crate::server::{Launch, server_dir};

/// Where `scripts/test-cloud.sh` puts the path of `moto_proxy` (installed from PyPI into a cached virtualenv).
pub const MOTO_PROXY_ENV: &str = "EDGEFLEET_MOTO_PROXY";
/// Credentials clients give the emulator: it accepts any, and these are obviously not real ones.
const ACCESS_KEY: &str = "emulated-access-key";
const SECRET_KEY: &str = "emulated-secret-key";
const REGION: &str = "us-east-1";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The emulated AWS of this test process. Get it with [`aws`].
#[derive(Debug)]
pub struct EmulatedAws {
    proxy: String,
    ca_bundle: PathBuf,
    pid: u32,
    dir: PathBuf,
    http: ureq::Agent,
}

/// The emulated AWS of this test process, started on first use (a few seconds) and stopped by the kernel when the
/// process exits. Needs `moto_proxy`: its path in `$EDGEFLEET_MOTO_PROXY`, as `scripts/test-cloud.sh` sets it.
///
/// # Panics
/// If it cannot start; the message says why. Later calls panic with the same message.
pub fn aws() -> &'static EmulatedAws {
    static AWS: OnceLock<Result<EmulatedAws, String>> = OnceLock::new();
    AWS.get_or_init(|| EmulatedAws::start().map_err(|error| format!("{error:#}")))
        .as_ref()
        .unwrap_or_else(|error| panic!("harness: the emulated AWS did not start: {error}"))
}

impl EmulatedAws {
    fn start() -> anyhow::Result<EmulatedAws> {
        let started = Instant::now();
        let binary = std::env::var_os(MOTO_PROXY_ENV).map(PathBuf::from).with_context(|| {
            format!(
                "{MOTO_PROXY_ENV} is not set: it names moto's `moto_proxy` (scripts/test-cloud.sh installs moto \
                 from PyPI and sets it)"
            )
        })?;
        // moto_proxy signs the certificates it presents with this CA, shipped in the package beside it.
        let ca_bundle = std::fs::read_dir(binary.parent().unwrap_or(&binary).join("../lib"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|python| python.path().join("site-packages/moto/moto_proxy/ca.crt"))
            .find(|ca| ca.is_file())
            .with_context(|| {
                format!(
                    "moto's proxy CA (moto/moto_proxy/ca.crt) beside {}",
                    binary.display()
                )
            })?;
        let dir = server_dir("aws", None)?;
        let port = free_port();
        let proxy = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .current_dir(&dir);
        // Moto's proxy answers HTTP/1.1 without `Connection: close` and then closes the socket, so a pooled
        // connection may already be dead when reused ("Peer disconnected"): every call opens its own.
        let http = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(REQUEST_TIMEOUT))
                .max_idle_connections(0)
                .http_status_as_error(false)
                .build(),
        );
        // Moto's proxy also answers a plain request that names the AWS host in `Host`, which spares the harness a
        // CONNECT tunnel and moto's CA.
        let probe = format!("{proxy}/?Action=GetCallerIdentity&Version=2011-06-15");
        let pid = Launch {
            label: "moto (the emulated AWS)",
            command,
            account: None,
            death_signal: libc::SIGKILL,
            output_log: dir.join("server.log"),
            other_logs: Vec::new(),
        }
        .start(|| {
            http.get(&probe)
                .header("host", "sts.amazonaws.com")
                .header("authorization", authorization("sts"))
                .call()
                .is_ok_and(|response| response.status().is_success())
        })?;
        eprintln!(
            "harness: emulated AWS (moto proxy) ready at {proxy} after {} ms (log: {})",
            started.elapsed().as_millis(),
            dir.join("server.log").display()
        );
        Ok(EmulatedAws {
            proxy,
            ca_bundle,
            pid,
            dir,
            http,
        })
    }

    /// What a client needs in its environment to reach the emulator instead of AWS: `HTTPS_PROXY` and
    /// `AWS_CA_BUNDLE` (moto's CA, which the provider and the AWS SDKs add to the trusted ones).
    pub fn client_env(&self) -> [(&'static str, String); 2] {
        [
            ("HTTPS_PROXY", self.proxy.clone()),
            (
                "AWS_CA_BUNDLE",
                self.ca_bundle.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// An access key to give clients (any is accepted).
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// Secret key of [`EmulatedAws::access_key`].
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The region tests use, `us-east-1`.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The emulator's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The emulator's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// One request to `service` at `host` (`ec2.us-east-1.amazonaws.com`, `s3.amazonaws.com`, ...): `method` on
    /// `path_and_query`, with a form body for the query protocols (EC2, IAM). Returns the status and the body,
    /// whatever the status.
    pub fn call(
        &self,
        service: &str,
        host: &str,
        method: &str,
        path_and_query: &str,
        form: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path_and_query}", self.proxy);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("host", host)
            .header("authorization", authorization(service));
        let mut response = match form {
            Some(body) => self.http.run(
                request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.to_string())?,
            ),
            None => self.http.run(request.body(())?),
        }
        .with_context(|| format!("{method} {host}{path_and_query} to the emulated {service}"))?;
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Ok((response.status().as_u16(), body))
    }
}

/// An `Authorization` header that names `service` in its credential scope, which is all moto reads of it.
fn authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, \
         Signature=0"
    )
}
