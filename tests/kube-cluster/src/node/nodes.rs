//! Node registration and heartbeats, as a kubelet does them: the Node with capacity, addresses and the kubelet
//! endpoint, its Lease in `kube-node-lease` renewed every 10 s, and the Ready condition refreshed, so the node
//! lifecycle controller of the real controller-manager keeps the nodes Ready and untainted.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::Error;

/// The kubelet's defaults: lease renewal every 10 s of a 40 s lease.
const LEASE_SECONDS: i32 = 40;
const HEARTBEAT: Duration = Duration::from_secs(10);
const NAMESPACE: &str = "kube-node-lease";
const FIELD_MANAGER: &str = "kube-cluster-node-simulator";

/// Creates the Node (or takes over an existing one of that name) and writes its status.
pub async fn register(client: &kube::Client, name: &str, kubelet_port: u16) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "node.kubernetes.io/instance-type": "simulated",
        }},
    }))
    .expect("a valid Node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(source) => return Err(Error::kube("registering node", source)),
    }
    write_status(client, name, kubelet_port).await?;
    renew_lease(client, name).await
}

/// Renews every node's Lease and refreshes its status until aborted.
pub async fn heartbeat(client: kube::Client, names: Vec<String>, kubelet_port: u16) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        for name in &names {
            let result = async {
                renew_lease(&client, name).await?;
                write_status(&client, name, kubelet_port).await
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(node = %name, %error, "heartbeat failed");
            }
        }
    }
}

fn status(name: &str, kubelet_port: u16) -> Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity =
        json!({"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"});
    json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "simulated kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "kube-cluster node simulator",
            "containerRuntimeVersion": "simulated://0", "kubeletVersion": "v1.37.2",
            "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
    }})
}

/// Writes the node status; conditions carry a fresh heartbeat time.
async fn write_status(client: &kube::Client, name: &str, kubelet_port: u16) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(status(name, kubelet_port)),
        )
        .await
        .map_err(|source| Error::kube("writing node status", source))?;
    Ok(())
}

async fn renew_lease(client: &kube::Client, name: &str) -> Result<(), Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now},
    });
    leases
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(lease),
        )
        .await
        .map_err(|source| Error::kube("renewing node lease", source))?;
    Ok(())
}
