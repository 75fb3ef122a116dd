//! The agent's identity: its own key pair, certificate signing requests and the client certificate it was issued.

mod enrol;
mod store;

pub use enrol::{EnrolError, bootstrap, recover, renew, renewal_loop};
pub use store::{CredentialStore, StoreError};

use std::fmt;

use agent_protocol::signing::{PinnedKeys, SignatureError};
use agent_protocol::{AGENT_ORGANISATION, agent_common_name, cluster_id_from_common_name};
use chrono::{DateTime, Utc};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use thiserror::Error;
use x509_parser::pem::Pem;

#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("generating the agent key pair / CSR failed: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("the stored private key is not a valid PEM key: {0}")]
    InvalidKey(#[source] rcgen::Error),
    #[error("the {what} is not a valid PEM certificate: {reason}")]
    InvalidCertificate { what: &'static str, reason: String },
    #[error(
        "the certificate subject CN {common_name:?} does not name a cluster (expected `cluster:<id>`)"
    )]
    NoClusterId { common_name: String },
    #[error("the certificate was issued for a different key than the agent's own")]
    KeyMismatch,
    #[error("the pinned task-signing keys are unusable: {0}")]
    TaskKeys(#[source] SignatureError),
}

/// The one-time bootstrap token; never printed.
#[derive(Clone)]
pub struct BootstrapToken(String);

impl BootstrapToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token text, for the `Bootstrap` request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BootstrapToken(<redacted>)")
    }
}

/// A private key with the client certificate issued for it, the CA that issued it, and the task-signing keys
/// pinned with them.
#[derive(Clone)]
pub struct Credentials {
    key_pem: String,
    cert_pem: String,
    ca_pem: String,
    task_keys: PinnedKeys,
    cluster_id: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

impl Credentials {
    /// Checks that the certificate parses, names a cluster and belongs to `key_pem`.
    pub fn from_pem(
        key_pem: String,
        cert_pem: String,
        ca_pem: String,
        task_keys: PinnedKeys,
    ) -> Result<Self, IdentityError> {
        let key = KeyPair::from_pem(&key_pem).map_err(IdentityError::InvalidKey)?;
        let pem = first_certificate(&cert_pem, "client certificate")?;
        let cert = pem
            .parse_x509()
            .map_err(|err| IdentityError::InvalidCertificate {
                what: "client certificate",
                reason: err.to_string(),
            })?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(IdentityError::KeyMismatch);
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let cluster_id = cluster_id_from_common_name(&common_name)
            .ok_or_else(|| IdentityError::NoClusterId {
                common_name: common_name.clone(),
            })?
            .to_owned();
        let validity = cert.validity();
        let timestamp = |seconds: i64| DateTime::from_timestamp(seconds, 0).unwrap_or_default();
        Ok(Self {
            cluster_id,
            not_before: timestamp(validity.not_before.timestamp()),
            not_after: timestamp(validity.not_after.timestamp()),
            key_pem,
            cert_pem,
            ca_pem,
            task_keys,
        })
    }

    /// The cluster this agent speaks for: taken from the certificate, never from configuration.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// True once less than a third of the certificate's lifetime remains, leaving two renewal attempts' worth
    /// of margin even for short-lived certificates.
    pub fn renewal_due_at(&self, now: DateTime<Utc>) -> bool {
        let lifetime = self.not_after - self.not_before;
        self.not_after - now < lifetime / 3
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA returned at bootstrap; the agent trusts it for the control plane's server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The keys a task's signature must verify with before the agent runs it.
    pub fn task_keys(&self) -> &PinnedKeys {
        &self.task_keys
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("cluster_id", &self.cluster_id)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("task_keys", &self.task_keys)
            .finish_non_exhaustive()
    }
}

/// A freshly generated key pair and the CSR for it; becomes [`Credentials`] once the control plane signs it.
pub struct KeyRequest {
    key: KeyPair,
    csr_pem: String,
}

impl KeyRequest {
    /// Generates an ECDSA P-256 key pair that never leaves the agent, and a CSR for it. The server ignores the
    /// CSR's subject, so the cluster id is included only as a hint when renewing.
    pub fn generate(cluster_id: Option<&str>) -> Result<Self, IdentityError> {
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(IdentityError::Generate)?;
        Self::for_key(key, cluster_id)
    }

    /// A CSR for the key the agent already has, to recover its expired certificate: the CSR's signature proves
    /// the agent holds the key the certificate was issued for.
    pub fn reusing(credentials: &Credentials) -> Result<Self, IdentityError> {
        let key = KeyPair::from_pem(credentials.key_pem()).map_err(IdentityError::InvalidKey)?;
        Self::for_key(key, Some(credentials.cluster_id()))
    }

    fn for_key(key: KeyPair, cluster_id: Option<&str>) -> Result<Self, IdentityError> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(IdentityError::Generate)?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, AGENT_ORGANISATION);
        if let Some(cluster_id) = cluster_id {
            subject.push(DnType::CommonName, agent_common_name(cluster_id));
        }
        params.distinguished_name = subject;
        let csr_pem = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(IdentityError::Generate)?;
        Ok(Self { key, csr_pem })
    }

    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// Pairs the key with the certificate the control plane issued for the CSR.
    pub fn into_credentials(
        self,
        cert_pem: String,
        ca_pem: String,
        task_keys: PinnedKeys,
    ) -> Result<Credentials, IdentityError> {
        Credentials::from_pem(self.key.serialize_pem(), cert_pem, ca_pem, task_keys)
    }
}

/// Counts the certificates in a PEM bundle, failing on the first one that does not parse.
pub fn count_certificates(pem: &str) -> Result<usize, String> {
    let mut count = 0;
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|err| err.to_string())?;
        if block.label == "CERTIFICATE" {
            block.parse_x509().map_err(|err| err.to_string())?;
            count += 1;
        }
    }
    Ok(count)
}

fn first_certificate(pem: &str, what: &'static str) -> Result<Pem, IdentityError> {
    let invalid = |reason: String| IdentityError::InvalidCertificate { what, reason };
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|err| invalid(err.to_string()))?;
        if block.label == "CERTIFICATE" {
            return Ok(block);
        }
    }
    Err(invalid("no CERTIFICATE block".into()))
}

#[cfg(test)]
pub(crate) mod testing {
    //! A throwaway CA that signs agent CSRs the way the control plane does, for unit tests.

    use agent_protocol::signing::{PinnedKeys, SigningKey, sign_key_set};
    use rcgen::{
        CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer, KeyPair,
    };
    use std::time::Duration;

    pub struct TestCa {
        issuer: Issuer<'static, KeyPair>,
        pub pem: String,
    }

    impl TestCa {
        pub fn new() -> Self {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(DnType::CommonName, "test ca");
            let pem = params.self_signed(&key).unwrap().pem();
            Self {
                issuer: Issuer::new(params, key),
                pem,
            }
        }

        /// Signs `csr_pem` for `cluster_id`, valid from `age` ago for `lifetime`.
        pub fn sign(
            &self,
            csr_pem: &str,
            cluster_id: &str,
            age: Duration,
            lifetime: Duration,
        ) -> String {
            let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
            let now = time::OffsetDateTime::now_utc();
            csr.params.not_before = now - age;
            csr.params.not_after = now - age + lifetime;
            csr.params.distinguished_name = rcgen::DistinguishedName::new();
            csr.params.distinguished_name.push(
                DnType::CommonName,
                agent_protocol::agent_common_name(cluster_id),
            );
            csr.signed_by(&self.issuer).unwrap().pem()
        }
    }

    /// A task-signing key and the pinned set an agent bootstrapped with it would hold.
    pub fn task_key() -> (SigningKey, PinnedKeys) {
        let key = SigningKey::from_pem(&SigningKey::generate_pem()).unwrap();
        let pinned = PinnedKeys::from_bootstrap(Some(&sign_key_set(&[&key]))).unwrap();
        (key, pinned)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{self, TestCa};
    use super::*;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn issued_certificate_names_the_cluster_and_matches_the_key() {
        let ca = TestCa::new();
        let request = KeyRequest::generate(None).unwrap();
        let cert = ca.sign(request.csr_pem(), "0b7c", Duration::ZERO, HOUR);
        let creds = request
            .into_credentials(cert, ca.pem.clone(), testing::task_key().1)
            .unwrap();
        assert_eq!(creds.cluster_id(), "0b7c");
        assert!(creds.is_valid_at(Utc::now()));
        assert!(!creds.renewal_due_at(Utc::now()));
        assert!(!format!("{creds:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn renewal_is_due_in_the_last_third() {
        let ca = TestCa::new();
        let request = KeyRequest::generate(None).unwrap();
        let cert = ca.sign(request.csr_pem(), "c1", Duration::from_secs(45 * 60), HOUR);
        let creds = request
            .into_credentials(cert, ca.pem.clone(), testing::task_key().1)
            .unwrap();
        assert!(creds.is_valid_at(Utc::now()));
        assert!(creds.renewal_due_at(Utc::now()));
    }

    #[test]
    fn certificate_for_another_key_is_rejected() {
        let ca = TestCa::new();
        let request = KeyRequest::generate(None).unwrap();
        let other = KeyRequest::generate(None).unwrap();
        let cert = ca.sign(other.csr_pem(), "c1", Duration::ZERO, HOUR);
        assert!(matches!(
            request.into_credentials(cert, ca.pem.clone(), testing::task_key().1),
            Err(IdentityError::KeyMismatch)
        ));
    }

    #[test]
    fn certificates_are_counted_and_garbage_is_rejected() {
        let ca = TestCa::new();
        assert_eq!(count_certificates(&format!("{}{}", ca.pem, ca.pem)), Ok(2));
        assert_eq!(count_certificates("hello"), Ok(0));
        assert!(
            count_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
