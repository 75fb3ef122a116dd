//! aws-sdk-s3 clients of the harness's S3 server (endpoint URL, path-style, static credentials).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// A client of `harness::s3()` with its credentials.
pub fn client() -> aws_sdk_s3::Client {
    client_with_secret_key(harness::s3().secret_key())
}

/// A client of `harness::s3()` that signs with `secret_key`, for tests of rejected signatures.
pub fn client_with_secret_key(secret_key: &str) -> aws_sdk_s3::Client {
    let s3 = harness::s3();
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client)
        .endpoint_url(s3.endpoint())
        // The server has no DNS name per bucket, so buckets go in the path.
        .force_path_style(true)
        .region(Region::new(s3.region().to_owned()))
        .credentials_provider(Credentials::new(
            s3.access_key(),
            secret_key,
            None,
            None,
            "harness",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
