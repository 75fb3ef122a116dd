//! A cluster's Terraform working directory: its root stack and the modules copied from the source tree, the
//! S3 backend settings (no credentials), and the non-secret variables.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::StateStoreConfig;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("no root stack for provider {stack:?} (looked in {dir})")]
    UnknownStack { stack: String, dir: PathBuf },
    #[error("preparing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct Workspace {
    /// Where Terraform runs: the copied root stack.
    pub stack_dir: PathBuf,
    /// The state object's key in the state bucket.
    pub state_key: String,
    /// Terraform's CLI configuration for this workspace (`TF_CLI_CONFIG_FILE`), when providers come from a mirror.
    pub cli_config: Option<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state key of a cluster: one per cluster, so clusters never share (or lock) each other's state.
pub fn state_key(cluster_id: Uuid) -> String {
    format!("clusters/{cluster_id}/terraform.tfstate")
}

/// Copies `terraform/region-cluster/<stack>` and `modules/` under `work_dir/<cluster>` (keeping relative
/// module paths), and writes `backend.hcl`, `edgefleet.auto.tfvars.json` and, with a provider mirror, a CLI
/// configuration that installs providers from it alone. The `.terraform` directory of an earlier run is kept, so
/// re-runs skip downloads.
pub fn prepare(
    source_dir: &Path,
    work_dir: &Path,
    cluster_id: Uuid,
    stack: &str,
    state: &StateStoreConfig,
    provider_mirror: Option<&Path>,
    variables: &Map<String, Value>,
) -> Result<Workspace, WorkspaceError> {
    let stack_source = source_dir.join("terraform/region-cluster").join(stack);
    if stack.contains(['/', '.']) || !stack_source.is_dir() {
        return Err(WorkspaceError::UnknownStack {
            stack: stack.to_string(),
            dir: stack_source,
        });
    }
    let root = work_dir.join(cluster_id.to_string());
    let stack_dir = root.join("terraform/region-cluster").join(stack);
    copy_tree(&source_dir.join("modules"), &root.join("modules"))?;
    copy_tree(&stack_source, &stack_dir)?;
    let key = state_key(cluster_id);
    let mut backend = format!(
        "bucket = {bucket}\nkey = {key}\nregion = {region}\nuse_lockfile = true\n",
        bucket = hcl_string(&state.bucket),
        key = hcl_string(&key),
        region = hcl_string(&state.region),
    );
    if let Some(endpoint) = &state.endpoint {
        backend.push_str(&format!(
            "endpoints = {{ s3 = {} }}\nskip_credentials_validation = true\nskip_requesting_account_id = true\n\
             skip_metadata_api_check = true\nskip_region_validation = true\n",
            hcl_string(endpoint)
        ));
    }
    if state.path_style {
        backend.push_str("use_path_style = true\n");
    }
    let backend_path = stack_dir.join("backend.hcl");
    std::fs::write(&backend_path, backend).map_err(io(&backend_path))?;
    let vars_path = stack_dir.join("edgefleet.auto.tfvars.json");
    let vars = serde_json::to_vec_pretty(variables).expect("JSON map serializes");
    std::fs::write(&vars_path, vars).map_err(io(&vars_path))?;
    let cli_config = match provider_mirror {
        Some(mirror) => {
            let path = root.join("terraform.tfrc");
            let text = format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path = {}\n  }}\n}}\n",
                hcl_string(&mirror.to_string_lossy())
            );
            std::fs::write(&path, text).map_err(io(&path))?;
            Some(path)
        }
        None => None,
    };
    Ok(Workspace {
        stack_dir,
        state_key: key,
        cli_config,
    })
}

fn hcl_string(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), WorkspaceError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let name = entry.file_name();
        if name == ".terraform"
            || name == ".terraform.lock.hcl"
            || name.to_string_lossy().ends_with(".tfstate")
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().map_err(io(&entry.path()))?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io(&target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> StateStoreConfig {
        StateStoreConfig {
            bucket: "tf".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: "us-east-1".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            path_style: true,
        }
    }

    #[test]
    fn renders_backend_without_credentials_and_refuses_unknown_stacks() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("terraform/region-cluster/local")).unwrap();
        std::fs::write(
            source.path().join("terraform/region-cluster/local/main.tf"),
            "# stack\n",
        )
        .unwrap();
        std::fs::create_dir_all(source.path().join("modules/local/cluster")).unwrap();
        std::fs::write(
            source.path().join("modules/local/cluster/main.tf"),
            "# module\n",
        )
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let cluster = Uuid::new_v4();
        let mut vars = Map::new();
        vars.insert("cluster_name".into(), Value::String("dev".into()));
        let ws = prepare(
            source.path(),
            work.path(),
            cluster,
            "local",
            &state(),
            None,
            &vars,
        )
        .unwrap();
        assert!(ws.cli_config.is_none());
        let backend = std::fs::read_to_string(ws.stack_dir.join("backend.hcl")).unwrap();
        assert!(
            backend.contains(&format!("key = \"clusters/{cluster}/terraform.tfstate\"")),
            "{backend}"
        );
        assert!(backend.contains("use_lockfile = true"));
        assert!(
            !backend.contains("very-secret") && !backend.contains("AKIAEXAMPLE"),
            "{backend}"
        );
        assert!(
            ws.stack_dir
                .join("../../../modules/local/cluster/main.tf")
                .exists()
        );
        let err = prepare(
            source.path(),
            work.path(),
            cluster,
            "../x",
            &state(),
            None,
            &vars,
        )
        .err()
        .unwrap();
        assert!(matches!(err, WorkspaceError::UnknownStack { .. }));

        let mirrored = prepare(
            source.path(),
            work.path(),
            cluster,
            "local",
            &state(),
            Some(Path::new("/opt/mirror \"x\"")),
            &vars,
        )
        .unwrap();
        let cli_config = std::fs::read_to_string(mirrored.cli_config.unwrap()).unwrap();
        assert_eq!(
            cli_config,
            "provider_installation {\n  filesystem_mirror {\n    path = \"/opt/mirror \\\"x\\\"\"\n  }\n}\n"
        );
    }
}
