//! Kubeconfigs with embedded certificates: the admin's (what tests and `kubectl` use) and the control-plane
//! components' own.

use base64::Engine;

use crate::pki::Pair;

/// A kubeconfig with one cluster, user and context, all called `name`, authenticating with `identity`'s
/// client certificate.
pub fn render(server: &str, ca_pem: &str, name: &str, identity: &Pair) -> String {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server,
            "certificate-authority-data": b64(ca_pem),
        }}],
        "users": [{"name": name, "user": {
            "client-certificate-data": b64(&identity.cert_pem),
            "client-key-data": b64(&identity.key_pem),
        }}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
        "current-context": name,
    });
    serde_yaml::to_string(&config).expect("a JSON value serializes as YAML")
}

/// A kube client from a rendered kubeconfig.
pub async fn client(yaml: &str) -> Result<kube::Client, crate::Error> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}
