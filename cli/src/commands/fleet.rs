//! Where clusters live and the clusters themselves: cloud accounts, regions, image templates, clusters and
//! installing their agents (`clusters token`, `clusters join`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use super::{POLL, api_word, encode, find, key_values, read_input, text};
use crate::output::{self, Column, Format};
use crate::{CliError, Client, CloudAction, ClusterAction, RegionAction, TemplateAction};

/// The field manager of what `clusters join` applies, so `managedFields` shows who installed the agent.
const FIELD_MANAGER: &str = "edgefleet-cli";
/// How long `clusters join --wait` waits for the agent before giving up.
const JOIN_WAIT: Duration = Duration::from_secs(300);

const CLOUD_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("PROVIDER", "/provider"),
    ("CREDENTIALS", "/credential_fields"),
    ("REGIONS", "/region_count"),
    ("ID", "/id"),
];
const REGION_COLUMNS: &[Column] = &[
    ("CODE", "/code"),
    ("NAME", "/display_name"),
    ("CLOUD", "/cloud_name"),
    ("PROVIDER", "/provider"),
    ("ENABLED", "/enabled"),
    ("CLUSTERS", "/cluster_count"),
    ("ID", "/id"),
];
const TEMPLATE_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("VERSION", "/version"),
    ("TITLE", "/title"),
    ("RUNTIME", "/runtime"),
    ("PORT", "/port"),
    ("DEFAULT IMAGE", "/default_image"),
];
pub(super) const CLUSTER_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("REGION", "/region_code"),
    ("STATUS", "/status"),
    ("AGENT", "/agent/connected"),
    ("KUBERNETES", "/agent/kubernetes_version"),
    ("NODES", "/agent/node_count"),
    ("ID", "/id"),
];

async fn cloud_id(client: &Client, cloud: &str) -> Result<String, CliError> {
    find(client, "/clouds", "cloud account", cloud, "/name").await
}

async fn region_id(client: &Client, region: &str) -> Result<String, CliError> {
    find(client, "/regions", "region", region, "/code").await
}

async fn cluster_id(client: &Client, cluster: &str) -> Result<String, CliError> {
    find(client, "/clusters", "cluster", cluster, "/name").await
}

pub async fn clouds(client: &Client, format: Format, action: CloudAction) -> Result<(), CliError> {
    let shown = match action {
        CloudAction::List => client.get("/clouds").await?,
        CloudAction::Get { cloud } => {
            let id = cloud_id(client, &cloud).await?;
            client.get(&format!("/clouds/{id}")).await?
        }
        CloudAction::Create {
            name,
            provider,
            credentials_file,
            tags,
        } => {
            let credentials = match credentials_file {
                Some(file) => credentials(&file)?,
                None => BTreeMap::new(),
            };
            let body = json!({"name": name, "provider": provider, "credentials": credentials,
                              "tags": key_values(&tags, "tag")?});
            client.post("/clouds", &body).await?
        }
        CloudAction::Delete { cloud } => {
            let id = cloud_id(client, &cloud).await?;
            let gone = client.get(&format!("/clouds/{id}")).await?;
            client.delete(&format!("/clouds/{id}")).await?;
            gone
        }
    };
    output::print(format, &shown, CLOUD_COLUMNS);
    Ok(())
}

/// A credentials file: a YAML (or JSON) map of field names to text values.
fn credentials(file: &Path) -> Result<BTreeMap<String, String>, CliError> {
    serde_yaml::from_str(&read_input(file)?).map_err(|error| {
        // serde_yaml's message may quote the offending value, which is a secret: say only where it is.
        let place = error
            .location()
            .map(|at| format!(" (line {}, column {})", at.line(), at.column()))
            .unwrap_or_default();
        CliError::Usage(format!(
            "{} is not a map of credential fields to text values{place}",
            file.display()
        ))
    })
}

pub async fn regions(
    client: &Client,
    format: Format,
    action: RegionAction,
) -> Result<(), CliError> {
    let shown = match action {
        RegionAction::List => client.get("/regions").await?,
        RegionAction::Get { region } => {
            let id = region_id(client, &region).await?;
            client.get(&format!("/regions/{id}")).await?
        }
        RegionAction::Create {
            code,
            cloud,
            display_name,
            disabled,
        } => {
            let cloud = cloud_id(client, &cloud).await?;
            let mut body = json!({"cloud_account_id": cloud, "code": code, "enabled": !disabled});
            if let Some(display_name) = display_name {
                body["display_name"] = json!(display_name);
            }
            client.post("/regions", &body).await?
        }
        RegionAction::Enable { region } => set_enabled(client, &region, true).await?,
        RegionAction::Disable { region } => set_enabled(client, &region, false).await?,
    };
    output::print(format, &shown, REGION_COLUMNS);
    Ok(())
}

async fn set_enabled(client: &Client, region: &str, enabled: bool) -> Result<Value, CliError> {
    let id = region_id(client, region).await?;
    client
        .patch(&format!("/regions/{id}"), &json!({"enabled": enabled}))
        .await
}

pub async fn templates(
    client: &Client,
    format: Format,
    action: TemplateAction,
) -> Result<(), CliError> {
    let shown = match action {
        TemplateAction::List => client.get("/templates").await?,
        TemplateAction::Get { name } => {
            let revisions = client.get(&format!("/templates/{}", encode(&name))).await;
            match revisions {
                Err(CliError::Api { status: 404, .. }) => {
                    return Err(CliError::NotFound(format!("no template named {name:?}")));
                }
                other => other?,
            }
        }
    };
    output::print(format, &shown, TEMPLATE_COLUMNS);
    Ok(())
}

pub async fn clusters(
    client: &Client,
    format: Format,
    action: ClusterAction,
) -> Result<(), CliError> {
    let shown = match action {
        ClusterAction::List => client.get("/clusters").await?,
        ClusterAction::Get { cluster } => {
            let id = cluster_id(client, &cluster).await?;
            client.get(&format!("/clusters/{id}")).await?
        }
        ClusterAction::Create {
            name,
            region,
            role,
            api_endpoint,
        } => {
            let region = region_id(client, &region).await?;
            let mut body = json!({"region_id": region, "name": name, "role": api_word(role)});
            if let Some(endpoint) = api_endpoint {
                body["api_endpoint"] = json!(endpoint);
            }
            client.post("/clusters", &body).await?
        }
        ClusterAction::Token {
            cluster,
            ttl,
            command,
        } => {
            let id = cluster_id(client, &cluster).await?;
            let bundle = bootstrap_token(client, &id, ttl).await?;
            if format == Format::Table {
                let what = if command { "command" } else { "manifest" };
                print!("{}", text(&bundle, &format!("/install/{what}")));
                eprintln!(
                    "one-time bootstrap token for {cluster}, valid until {}",
                    text(&bundle, "/expires_at")
                );
            } else {
                output::print(format, &bundle, &[]);
            }
            return Ok(());
        }
        ClusterAction::Join {
            name,
            region,
            kubeconfig,
            context,
            wait,
        } => join(client, &name, &region, kubeconfig, context, wait).await?,
        ClusterAction::RevokeAgent { cluster } => {
            let id = cluster_id(client, &cluster).await?;
            client
                .post(&format!("/clusters/{id}/revoke-agent"), &json!({}))
                .await?;
            client.get(&format!("/clusters/{id}")).await?
        }
        ClusterAction::Delete { cluster } => {
            let id = cluster_id(client, &cluster).await?;
            let gone = client.get(&format!("/clusters/{id}")).await?;
            client.delete(&format!("/clusters/{id}")).await?;
            gone
        }
    };
    output::print(format, &shown, CLUSTER_COLUMNS);
    Ok(())
}

async fn bootstrap_token(
    client: &Client,
    cluster_id: &str,
    ttl: Option<Duration>,
) -> Result<Value, CliError> {
    let body = match ttl {
        Some(ttl) => json!({"ttl_seconds": ttl.as_secs()}),
        None => json!({}),
    };
    client
        .post(&format!("/clusters/{cluster_id}/bootstrap-tokens"), &body)
        .await
}

/// Registers the kubeconfig context's cluster (or takes the one of that name already in the region, so a join
/// can be run again), mints a bootstrap token and server-side applies the agent's install manifest there.
async fn join(
    client: &Client,
    name: &str,
    region: &str,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    wait: bool,
) -> Result<Value, CliError> {
    // The cluster must be reachable before anything is registered for it.
    let (kube, api_endpoint) = kube_client(kubeconfig, context).await?;
    let version = kube
        .apiserver_version()
        .await
        .map_err(|error| CliError::Failed(format!("cannot reach the cluster: {error}")))?;
    let region_id = region_id(client, region).await?;
    let clusters = client.get("/clusters").await?;
    let existing = clusters
        .as_array()
        .into_iter()
        .flatten()
        .find(|cluster| cluster["name"] == name);
    let cluster = match existing {
        Some(cluster) if cluster["region_id"] == region_id.as_str() => {
            eprintln!("cluster {name} is registered already; installing its agent again");
            cluster.clone()
        }
        Some(cluster) => {
            return Err(CliError::Conflict(format!(
                "a cluster named {name:?} exists in region {}",
                text(cluster, "/region_code")
            )));
        }
        None => {
            client
                .post(
                    "/clusters",
                    &json!({"region_id": region_id, "name": name, "role": "user",
                            "api_endpoint": api_endpoint}),
                )
                .await?
        }
    };
    let id = text(&cluster, "/id");
    let bundle = bootstrap_token(client, &id, None).await?;
    let applied = agent_protocol::apply::apply_manifest(
        &kube,
        bundle["install"]["manifest"].as_str().unwrap_or_default(),
        FIELD_MANAGER,
    )
    .await
    .map_err(|error| CliError::Failed(format!("installing the agent: {error}")))?;
    eprintln!(
        "installed the agent on {name} (Kubernetes {}): {}",
        version.git_version,
        applied.join(", ")
    );
    if !wait {
        return client.get(&format!("/clusters/{id}")).await;
    }
    let deadline = tokio::time::Instant::now() + JOIN_WAIT;
    loop {
        let cluster = client.get(&format!("/clusters/{id}")).await?;
        if cluster["agent"]["connected"] == true {
            return Ok(cluster);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::Failed(format!(
                "the agent of {name} did not connect within {} s; see `kubectl -n edgefleet-system logs deploy/edgefleet-agent`",
                JOIN_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A client for the kubeconfig's current context (or `context`), read from `path` or found the way kubectl finds
/// it (`$KUBECONFIG`, then `~/.kube/config`), and the API server's address.
async fn kube_client(
    path: Option<PathBuf>,
    context: Option<String>,
) -> Result<(kube::Client, String), CliError> {
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    let config = match &path {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|error| {
                CliError::Usage(format!(
                    "cannot read kubeconfig {}: {error}",
                    path.display()
                ))
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|error| CliError::Usage(format!("the kubeconfig is not usable: {error}")))?;
    let endpoint = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|error| CliError::Usage(format!("the kubeconfig is not usable: {error}")))?;
    Ok((client, endpoint))
}
