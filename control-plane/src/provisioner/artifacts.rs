//! The S3 bucket that holds Terraform state (written by Terraform itself) and the plan files the control
//! plane saves, through aws-sdk-s3.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::config::StateStoreConfig;

#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} s3://{bucket}/{key}: {message}")]
pub struct ArtifactError {
    operation: &'static str,
    bucket: String,
    key: String,
    message: String,
}

#[derive(Clone)]
pub struct ArtifactStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl ArtifactStore {
    pub fn new(config: &StateStoreConfig) -> Self {
        // rustls on ring, like the rest of the control plane (the SDK's default client brings aws-lc).
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http_client)
            .region(Region::new(config.region.clone()))
            .force_path_style(config.path_style)
            .credentials_provider(Credentials::new(
                &config.access_key_id,
                &config.secret_access_key,
                None,
                None,
                "edgefleet-config",
            ));
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
        }
    }

    fn error(
        &self,
        operation: &'static str,
        key: &str,
        err: impl std::fmt::Display,
    ) -> ArtifactError {
        ArtifactError {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            message: err.to_string(),
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ArtifactError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("put", key, aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    /// The object's bytes, or `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => {
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.error("read", key, e))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(self.error("get", key, aws_sdk_s3::error::DisplayErrorContext(err))),
        }
    }
}
