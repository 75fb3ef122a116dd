//! The agent certificate authority: created once, stored sealed in PostgreSQL, signs agent CSRs and the
//! agent service's own TLS certificate.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use time::OffsetDateTime;
use uuid::Uuid;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crypto::{CryptoError, SecretBox};
use crate::store::{Store, StoreError};

const CA_KEY_CONTEXT: &str = "pki:agent-ca-key";
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const SERVER_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Tolerates small clock differences between the control plane and agents.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Backdating is capped at a tenth of the lifetime, so a short-lived certificate (as in tests) does not look
/// mostly used up the moment it is issued (agents renew when a third of the lifetime is left).
fn backdate(ttl: Duration) -> Duration {
    BACKDATE.min(ttl / 10)
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate signing request is not valid: {0}")]
    InvalidCsr(String),
    #[error("client certificate is not an agent certificate: {0}")]
    NotAnAgentCertificate(String),
    #[error("the certificate cannot be recovered: {0}")]
    NotRecoverable(String),
    #[error("the CA certificate cannot verify agent certificates: {0}")]
    CaUnusable(String),
    #[error("cannot generate or sign a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A certificate the CA issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub pem: String,
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// The cluster identity carried by a verified agent client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub cluster_id: Uuid,
    pub serial: String,
    pub not_after: DateTime<Utc>,
}

pub struct AgentCa {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    /// Checks agent certificates outside a TLS handshake (recovery of an expired one), as the handshake would.
    verifier: Arc<dyn ClientCertVerifier>,
}

impl AgentCa {
    /// Loads the CA from the database, creating it if this is the first control plane to start. Concurrent
    /// first starts race on one row; the loser discards its CA and loads the winner's.
    pub async fn load_or_create(store: &Store, sbox: &SecretBox) -> Result<Self, PkiError> {
        if let Some((ca_pem, sealed_key)) = store.load_ca().await? {
            return Self::open(&ca_pem, &sealed_key, sbox);
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Edgefleet agent CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        let sealed = sbox.seal(key.serialize_pem().as_bytes(), CA_KEY_CONTEXT);
        store.insert_ca_if_absent(&cert.pem(), &sealed).await?;
        let (ca_pem, sealed_key) = store
            .load_ca()
            .await?
            .expect("the CA row exists after insert_ca_if_absent");
        Self::open(&ca_pem, &sealed_key, sbox)
    }

    fn open(ca_pem: &str, sealed_key: &[u8], sbox: &SecretBox) -> Result<Self, PkiError> {
        let key_pem = sbox.open(sealed_key, CA_KEY_CONTEXT)?;
        let key_pem = std::str::from_utf8(&key_pem)
            .map_err(|_| PkiError::InvalidCsr("stored CA key is not UTF-8".into()))?;
        let key = KeyPair::from_pem(key_pem)?;
        Self::with_key(ca_pem, key)
    }

    fn with_key(ca_pem: &str, key: KeyPair) -> Result<Self, PkiError> {
        let issuer = Issuer::from_ca_cert_pem(ca_pem, key)?;
        let unusable = |reason: String| PkiError::CaUnusable(reason);
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(first_certificate_der(ca_pem)?))
            .map_err(|e| unusable(e.to_string()))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| unusable(e.to_string()))?;
        Ok(Self {
            issuer,
            ca_pem: ca_pem.to_string(),
            verifier,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A fresh serving certificate for the agent gRPC endpoint; returns (certificate chain PEM, key PEM).
    /// TLS for the agent port: a serving certificate for `names`, and client certificates verified against this
    /// CA when presented. They are optional at the TLS layer only because `Bootstrap` and `Recover` are called
    /// without a valid one; every other call refuses a connection without one. HTTP/2 only, as gRPC needs.
    pub fn agent_port_tls(&self, names: &[String]) -> Result<rustls::ServerConfig, PkiError> {
        let unusable = |reason: String| PkiError::CaUnusable(reason);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(first_certificate_der(&self.ca_pem)?))
            .map_err(|e| unusable(e.to_string()))?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| unusable(e.to_string()))?;
        let (chain_pem, key_pem) = self.issue_server_certificate(names)?;
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unusable(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| unusable(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(chain, key)
            })
            .map_err(|e| unusable(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    fn issue_server_certificate(&self, names: &[String]) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name("edgefleet control plane");
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + SERVER_CERT_VALIDITY;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((
            format!("{}{}", cert.pem(), self.ca_pem),
            key.serialize_pem(),
        ))
    }

    /// Signs an agent's CSR for `cluster_id`. Only the CSR's public key is used: the subject, SANs and
    /// extensions the agent asked for are ignored, so a token for one cluster can never yield another identity.
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        cluster_id: Uuid,
        ttl: Duration,
    ) -> Result<IssuedCertificate, PkiError> {
        let requested = parse_csr(csr_pem)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            agent_protocol::agent_common_name(&cluster_id.to_string()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, agent_protocol::AGENT_ORGANISATION);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - backdate(ttl);
        params.not_after = now + ttl;
        let to_sign = CertificateSigningRequestParams {
            params: params.clone(),
            public_key: requested.public_key,
        };
        let cert = to_sign.signed_by(&self.issuer)?;
        Ok(IssuedCertificate {
            pem: cert.pem(),
            serial: serial_hex,
            not_before: to_chrono(params.not_before),
            not_after: to_chrono(params.not_after),
        })
    }
}

impl AgentCa {
    /// Checks an expired agent certificate presented for recovery together with the CSR that is to replace it:
    /// the certificate was issued by this CA (verified as of the last second of its validity, as a TLS handshake
    /// then would have), it expired no longer than `grace` before `now`, and the CSR, whose self-signature proves
    /// possession of its key, is for the certificate's own key. Returns the certificate's identity; whether it
    /// was revoked is for the caller to ask the store.
    pub fn recoverable_identity(
        &self,
        certificate_pem: &str,
        csr_pem: &str,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> Result<AgentIdentity, PkiError> {
        if grace.is_zero() {
            return Err(PkiError::NotRecoverable(
                "recovery is turned off on this control plane (agents.recovery_grace_seconds is 0)"
                    .into(),
            ));
        }
        let der = first_certificate_der(certificate_pem)?;
        let identity = agent_identity(&der)?;
        let last_valid_second = u64::try_from(identity.not_after.timestamp() - 1).unwrap_or(0);
        self.verifier
            .verify_client_cert(
                &CertificateDer::from(der.as_slice()),
                &[],
                UnixTime::since_unix_epoch(Duration::from_secs(last_valid_second)),
            )
            .map_err(|e| {
                PkiError::NotRecoverable(format!(
                    "not an agent certificate of this control plane: {e}"
                ))
            })?;
        let grace_chrono = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        if now > identity.not_after + grace_chrono {
            return Err(PkiError::NotRecoverable(format!(
                "it expired at {}, more than the grace period of {} s ago; the agent needs a new bootstrap token",
                identity.not_after.to_rfc3339(),
                grace.as_secs()
            )));
        }
        let requested = parse_csr(csr_pem)?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| PkiError::NotAnAgentCertificate(format!("unparsable: {e}")))?;
        if cert.public_key().subject_public_key.data.as_ref() != requested.public_key.der_bytes() {
            return Err(PkiError::NotRecoverable(
                "the CSR is not for the expired certificate's key".into(),
            ));
        }
        Ok(identity)
    }
}

/// The DER of the first certificate in a PEM text.
fn first_certificate_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|block| block.label == "CERTIFICATE")
        .map(|block| block.contents)
        .ok_or_else(|| PkiError::NotAnAgentCertificate("no PEM CERTIFICATE block".into()))
}

/// Parses a CSR and verifies its self-signature (proof that the caller holds the private key).
fn parse_csr(csr_pem: &str) -> Result<CertificateSigningRequestParams, PkiError> {
    CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::InvalidCsr(e.to_string()))
}

/// Checks a CSR without signing it, so a request can be refused before anything is spent on it.
pub fn check_csr(csr_pem: &str) -> Result<(), PkiError> {
    parse_csr(csr_pem).map(|_| ())
}

/// Reads the cluster identity out of a client certificate that rustls has already verified against the CA.
pub fn agent_identity(cert_der: &[u8]) -> Result<AgentIdentity, PkiError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::NotAnAgentCertificate(format!("unparsable: {e}")))?;
    let organisation_ok = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .any(|o| o == agent_protocol::AGENT_ORGANISATION);
    if !organisation_ok {
        return Err(PkiError::NotAnAgentCertificate(
            "subject organisation is not edgefleet-agent".into(),
        ));
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| PkiError::NotAnAgentCertificate("no common name".into()))?;
    let cluster_id = agent_protocol::cluster_id_from_common_name(common_name)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| {
            PkiError::NotAnAgentCertificate(format!("common name {common_name:?} names no cluster"))
        })?;
    let not_after =
        DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0).unwrap_or_else(Utc::now);
    Ok(AgentIdentity {
        cluster_id,
        serial: hex::encode(cert.raw_serial()),
        not_after,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 128 random bits with the top bit clear, so the DER integer stays positive and its bytes round-trip.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn to_chrono(t: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_else(Utc::now)
}

#[cfg(test)]
impl AgentCa {
    /// A fresh CA held in memory only.
    pub(crate) fn for_tests() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = name("test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).unwrap();
        Self::with_key(&cert.pem(), key).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_certificate_is_recovered_only_with_its_key_within_the_grace_period() {
        const HOUR: Duration = Duration::from_secs(3600);
        let ca = AgentCa::for_tests();
        let key = KeyPair::generate().unwrap();
        let csr_for = |key: &KeyPair| {
            CertificateParams::new(Vec::<String>::new())
                .unwrap()
                .serialize_request(key)
                .unwrap()
                .pem()
                .unwrap()
        };
        let cluster = Uuid::new_v4();
        let issued = ca.sign_agent_csr(&csr_for(&key), cluster, HOUR).unwrap();
        let an_hour_after_expiry = issued.not_after + chrono::Duration::hours(1);

        let identity = ca
            .recoverable_identity(&issued.pem, &csr_for(&key), 2 * HOUR, an_hour_after_expiry)
            .unwrap();
        assert_eq!(
            (identity.cluster_id, identity.serial),
            (cluster, issued.serial.clone())
        );

        let refusal = |result: Result<AgentIdentity, PkiError>| match result {
            Err(PkiError::NotRecoverable(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let late =
            ca.recoverable_identity(&issued.pem, &csr_for(&key), HOUR / 2, an_hour_after_expiry);
        assert!(refusal(late).contains("more than the grace period"));
        let other_key = KeyPair::generate().unwrap();
        let stolen = ca.recoverable_identity(
            &issued.pem,
            &csr_for(&other_key),
            2 * HOUR,
            an_hour_after_expiry,
        );
        assert!(refusal(stolen).contains("not for the expired certificate's key"));
        let foreign = AgentCa::for_tests()
            .sign_agent_csr(&csr_for(&key), cluster, HOUR)
            .unwrap();
        let forged =
            ca.recoverable_identity(&foreign.pem, &csr_for(&key), 2 * HOUR, an_hour_after_expiry);
        assert!(refusal(forged).contains("not an agent certificate of this control plane"));
        let off = ca.recoverable_identity(
            &issued.pem,
            &csr_for(&key),
            Duration::ZERO,
            an_hour_after_expiry,
        );
        assert!(refusal(off).contains("turned off"));
    }

    #[test]
    fn csr_identity_is_replaced_by_the_bound_cluster() {
        let ca = AgentCa::for_tests();
        let agent_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name = name("cluster:00000000-0000-0000-0000-000000000001");
        let csr = params.serialize_request(&agent_key).unwrap().pem().unwrap();
        let cluster = Uuid::new_v4();
        let issued = ca
            .sign_agent_csr(&csr, cluster, Duration::from_secs(3600))
            .unwrap();
        let der = rustls_pemfile_der(&issued.pem);
        let identity = agent_identity(&der).unwrap();
        assert_eq!(identity.cluster_id, cluster);
        assert_eq!(identity.serial, issued.serial);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert!(
            cert.subject_alternative_name().unwrap().is_none(),
            "requested SANs must be dropped"
        );
        let lifetime = issued.not_after - issued.not_before;
        assert!(lifetime <= chrono::Duration::seconds(3600 + 300));
        let short = ca
            .sign_agent_csr(&csr, cluster, Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            (short.not_after - short.not_before).num_seconds(),
            66,
            "backdating is capped at ttl/10"
        );
    }

    #[test]
    fn garbage_csr_is_refused_with_a_reason() {
        let err = AgentCa::for_tests()
            .sign_agent_csr("not a csr", Uuid::new_v4(), Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, PkiError::InvalidCsr(_)), "{err}");
    }

    #[test]
    fn server_certificate_chain_ends_with_the_ca() {
        let ca = AgentCa::for_tests();
        let (chain, key) = ca
            .issue_server_certificate(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        assert!(chain.ends_with(ca.ca_pem()));
        assert!(key.contains("PRIVATE KEY"));
    }

    fn rustls_pemfile_der(pem_text: &str) -> Vec<u8> {
        let parsed = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
            .unwrap()
            .1;
        parsed.contents
    }
}
