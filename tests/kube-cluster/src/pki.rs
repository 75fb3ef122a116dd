//! The cluster's certificates, made fresh for every cluster: one CA, the API server's serving certificate,
//! client certificates for the admin, the controller-manager, the scheduler, the API server's calls to kubelets
//! and the node simulator, the simulated kubelets' serving certificate, and the service-account signing key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::Error;

/// The first address of the service range (`--service-cluster-ip-range`), which the `kubernetes` Service gets.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// A certificate and its key, as PEM and as files in the PKI directory.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Every certificate and key the cluster's processes are started with.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    /// The CA's key, which the controller-manager needs to sign certificate requests.
    pub ca_key_file: PathBuf,
    pub apiserver: Pair,
    /// `system:masters`: the kubeconfig's identity.
    pub admin: Pair,
    pub controller_manager: Pair,
    pub scheduler: Pair,
    /// What the API server presents to kubelets (logs, exec); `system:masters`, as kubeadm's
    /// `apiserver-kubelet-client`.
    pub apiserver_kubelet_client: Pair,
    /// The node simulator's identity towards the API server (see `node`).
    pub node_simulator: Pair,
    /// The simulated kubelets' HTTPS endpoint (127.0.0.1), verified by the API server.
    pub kubelet_serving: Pair,
    /// Signs service-account tokens (ECDSA P-256, PKCS#8).
    pub service_account_key_file: PathBuf,
    /// Verifies them (the API server reads public keys only).
    pub service_account_public_key_file: PathBuf,
}

impl Pki {
    /// Generates everything into `dir` (created, mode 0700; keys 0600).
    pub fn generate(dir: &Path) -> Result<Self, Error> {
        create_private_dir(dir)?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kube-cluster-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_file = dir.join("ca.crt");
        let ca_key_file = dir.join("ca.key");
        write(&ca_file, ca_cert.pem().as_bytes(), 0o644)?;
        write(&ca_key_file, ca_key.serialize_pem().as_bytes(), 0o600)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let loopback = [
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        let mut apiserver_names: Vec<SanType> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .into_iter()
        .map(|name| Ok(SanType::DnsName(name.try_into()?)))
        .collect::<Result<_, rcgen::Error>>()?;
        apiserver_names.extend(loopback.clone());
        apiserver_names.push(SanType::IpAddress(IpAddr::V4(KUBERNETES_SERVICE_IP)));

        let sign = |name: &str, cn: &str, org: Option<&str>, usage, sans: Vec<SanType>| {
            issue(dir, &issuer, name, cn, org, usage, sans)
        };
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let pki = Self {
            apiserver: sign(
                "apiserver",
                "kube-apiserver",
                None,
                server.clone(),
                apiserver_names,
            )?,
            admin: sign(
                "admin",
                "kube-cluster-admin",
                Some("system:masters"),
                client.clone(),
                vec![],
            )?,
            controller_manager: sign(
                "controller-manager",
                "system:kube-controller-manager",
                None,
                client.clone(),
                vec![],
            )?,
            scheduler: sign(
                "scheduler",
                "system:kube-scheduler",
                None,
                client.clone(),
                vec![],
            )?,
            apiserver_kubelet_client: sign(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                Some("system:masters"),
                client.clone(),
                vec![],
            )?,
            node_simulator: sign(
                "node-simulator",
                "kube-cluster-node-simulator",
                Some("system:masters"),
                client,
                vec![],
            )?,
            kubelet_serving: sign(
                "kubelet",
                "kube-cluster-kubelet",
                None,
                server,
                loopback.to_vec(),
            )?,
            service_account_key_file: dir.join("service-account.key"),
            service_account_public_key_file: dir.join("service-account.pub"),
            ca_pem: ca_cert.pem(),
            ca_file,
            ca_key_file,
        };
        let service_account_key = KeyPair::generate()?;
        write(
            &pki.service_account_key_file,
            service_account_key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write(
            &pki.service_account_public_key_file,
            service_account_key.public_key_pem().as_bytes(),
            0o644,
        )?;
        Ok(pki)
    }
}

fn issue(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    file_name: &str,
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
    subject_alt_names: Vec<SanType>,
) -> Result<Pair, Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
    }
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.subject_alt_names = subject_alt_names;
    let cert = params.signed_by(&key, issuer)?;
    let pair = Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_file: dir.join(format!("{file_name}.crt")),
        key_file: dir.join(format!("{file_name}.key")),
    };
    write(&pair.cert_file, pair.cert_pem.as_bytes(), 0o644)?;
    write(&pair.key_file, pair.key_pem.as_bytes(), 0o600)?;
    Ok(pair)
}

/// Creates `dir` (and its parents) readable by its owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `contents` to `path` with `mode`, replacing an older file atomically.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io_error = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut staging = path.as_os_str().to_owned();
    staging.push(".partial");
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_file(&staging);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staging)
        .map_err(io_error)?;
    file.write_all(contents).map_err(io_error)?;
    drop(file);
    std::fs::rename(&staging, path).map_err(io_error)
}
