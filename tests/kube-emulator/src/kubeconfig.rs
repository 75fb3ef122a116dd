//! Kubeconfig for the emulator: context `kube-emulator` (bearer token, or no credentials in plain HTTP mode
//! without a token) and, in HTTPS mode, context `kube-emulator-cert` using the admin client certificate.

use base64::Engine;
use serde_json::{Value, json};

/// Name of the default context (token auth).
pub const CONTEXT: &str = "kube-emulator";
/// Name of the client-certificate context (HTTPS mode only).
pub const CERT_CONTEXT: &str = "kube-emulator-cert";

/// What goes into the kubeconfig.
pub struct Credentials<'a> {
    pub server: &'a str,
    pub ca_pem: Option<&'a str>,
    pub token: Option<&'a str>,
    /// `(certificate PEM, key PEM)`.
    pub client_cert: Option<(&'a str, &'a str)>,
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Renders the kubeconfig YAML.
pub fn render(credentials: &Credentials<'_>) -> Result<String, serde_yaml::Error> {
    let mut cluster = json!({"server": credentials.server});
    if let Some(ca) = credentials.ca_pem {
        cluster["certificate-authority-data"] = json!(b64(ca));
    }
    let mut token_user = json!({});
    if let Some(token) = credentials.token {
        token_user["token"] = json!(token);
    }
    let mut users = vec![json!({"name": CONTEXT, "user": token_user})];
    let context = |name: &str| json!({"name": name, "context": {"cluster": CONTEXT, "user": name, "namespace": "default"}});
    let mut contexts = vec![context(CONTEXT)];
    if let Some((cert, key)) = credentials.client_cert {
        users.push(json!({"name": CERT_CONTEXT, "user": {
            "client-certificate-data": b64(cert),
            "client-key-data": b64(key),
        }}));
        contexts.push(context(CERT_CONTEXT));
    }
    let config: Value = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": users,
        "contexts": contexts,
        "current-context": CONTEXT,
    });
    serde_yaml::to_string(&config)
}
