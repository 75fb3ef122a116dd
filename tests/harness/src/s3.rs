//! A private S3-compatible server per test process, started from the workspace's `s3-server` binary.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use crate::server::{Launch, server_dir};
use crate::workspace::workspace_bin;

/// Fixed rather than random: the server is private to this process and only listens on loopback, and
/// fixed values are easier to type when debugging with another client.
const ACCESS_KEY: &str = "harness-access-key";
const SECRET_KEY: &str = "harness-secret-key";
/// The server accepts any region in signatures; this is the one clients are told to use.
const REGION: &str = "us-east-1";
/// A bucket request touches one directory; anything slower than this is a hung server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An S3-compatible server that belongs to this test process. Get it with [`s3`].
#[derive(Debug)]
pub struct S3 {
    endpoint: String,
    pid: u32,
    dir: PathBuf,
    http: ureq::Agent,
    buckets_created: AtomicU64,
}

/// The S3 server of this test process (path-style requests, SigV4 with [`S3::access_key`] and
/// [`S3::secret_key`]), started on first use (a few milliseconds) and stopped by the kernel when the
/// process exits. Needs the `s3-server` binary (`cargo build --workspace --bins`).
///
/// # Panics
/// If the server cannot start; the message says why and shows the end of its log. Later calls panic
/// with the same message instead of trying again.
pub fn s3() -> &'static S3 {
    static S3_SERVER: OnceLock<Result<S3, String>> = OnceLock::new();
    S3_SERVER
        .get_or_init(|| S3::start().map_err(|error| format!("{error:#}")))
        .as_ref()
        .unwrap_or_else(|error| panic!("harness: the S3 server did not start: {error}"))
}

impl S3 {
    fn start() -> anyhow::Result<S3> {
        let started = Instant::now();
        let binary = workspace_bin("s3-server")?;
        // It runs as the current user, even root: unlike the database servers it does not refuse to.
        let dir = server_dir("s3", None)?;
        let url_file = dir.join("url");
        let mut command = Command::new(binary);
        command
            .args(["--listen", "127.0.0.1:0"])
            .arg("--root")
            .arg(dir.join("data"))
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg("--port-file")
            .arg(&url_file)
            .current_dir(&dir);
        let pid = Launch {
            label: "the S3 server",
            command,
            account: None,
            // Its data is thrown away, so there is nothing to shut down cleanly.
            death_signal: libc::SIGKILL,
            output_log: dir.join("server.log"),
            other_logs: Vec::new(),
        }
        // The server writes the file (atomically) only once it accepts connections.
        .start(|| url_file.is_file())?;
        let endpoint = fs::read_to_string(&url_file)
            .with_context(|| format!("read {}", url_file.display()))?;

        let s3 = S3 {
            endpoint,
            pid,
            dir,
            http: ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .timeout_global(Some(REQUEST_TIMEOUT))
                    // Error responses carry the S3 error document, which we want to show.
                    .http_status_as_error(false)
                    .build(),
            ),
            buckets_created: AtomicU64::new(0),
        };
        eprintln!(
            "harness: S3 server ready at {} after {} ms (log: {})",
            s3.endpoint,
            started.elapsed().as_millis(),
            s3.log_path().display()
        );
        Ok(s3)
    }

    /// Base URL for path-style requests, e.g. `http://127.0.0.1:41236` (the endpoint URL of an S3 client
    /// with path-style addressing, or Terraform's `endpoints.s3` with `use_path_style = true`).
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The only access key the server accepts.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// Secret key of [`S3::access_key`].
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The region clients should sign for, `us-east-1`.
    pub fn region(&self) -> &str {
        REGION
    }

    /// Creates an empty bucket with a new name that starts with `name_hint` and returns the name.
    ///
    /// # Panics
    /// If the server refuses; the message carries its error.
    pub fn create_bucket(&self, name_hint: &str) -> String {
        let number = self.buckets_created.fetch_add(1, Ordering::Relaxed) + 1;
        let name = unique_bucket_name(name_hint, number);
        if let Err(error) = self.put_bucket(&name) {
            panic!("harness: {error:#}");
        }
        name
    }

    /// The server's process id, for tests that inject a storage failure.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's log (its stdout and stderr; `RUST_LOG` in the test's environment sets the detail).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// CreateBucket, signed with SigV4 like any S3 client would sign it.
    fn put_bucket(&self, name: &str) -> anyhow::Result<()> {
        let url = format!("{}/{name}", self.endpoint);
        let mut request = self.http.put(&url);
        for (header, value) in signature_headers("PUT", &url)? {
            request = request.header(header, value);
        }
        let mut response = request
            .send_empty()
            .with_context(|| format!("sending CreateBucket to {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            bail!(
                "the S3 server refused to create bucket `{name}` (HTTP {status}): {}",
                body.trim_end()
            );
        }
        Ok(())
    }
}

/// The headers that sign a request without a body: `x-amz-date`, `x-amz-content-sha256` and
/// `authorization`. Bucket names need no percent-encoding, so S3's signing quirks (no double encoding,
/// no path normalisation) do not matter here and the defaults serve.
fn signature_headers(method: &str, url: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "harness").into();
    let mut settings = SigningSettings::default();
    // S3 requires the payload hash in a header of its own.
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .context("SigV4 parameters")?
        .into();
    let request = SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(&[]))
        .with_context(|| format!("signing {method} {url}"))?;
    let (instructions, _signature) = sign(request, &params)
        .with_context(|| format!("signing {method} {url}"))?
        .into_parts();
    let (headers, _query_params) = instructions.into_parts();
    Ok(headers
        .iter()
        .map(|header| (header.name(), header.value().to_owned()))
        .collect())
}

/// `<hint>-<number>` reduced to what S3 allows in a bucket name (3 to 63 lower-case letters, digits and
/// `-`, starting and ending with a letter or digit), so it works with any client.
fn unique_bucket_name(name_hint: &str, number: u64) -> String {
    let cleaned: String = name_hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let cleaned = cleaned.trim_start_matches('-');
    let stem = if cleaned.is_empty() {
        "bucket"
    } else {
        cleaned
    };
    format!("{stem}-{number}")
}

#[cfg(test)]
mod tests {
    use super::unique_bucket_name;

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(
            unique_bucket_name("terraform-state", 3),
            "terraform-state-3"
        );
        assert_eq!(
            unique_bucket_name("Build_Artifacts", 1),
            "build-artifacts-1"
        );
        assert_eq!(unique_bucket_name("", 2), "bucket-2");
        assert_eq!(unique_bucket_name("--x", 4), "x-4");
        assert_eq!(unique_bucket_name("Ünïcode", 5), "n-code-5");
        assert!(unique_bucket_name(&"a".repeat(100), u64::MAX).len() <= 63);
    }
}
