//! Where the CLI keeps the API URL and token (`edgefleet login`), and how flags and `EDGEFLEET_URL` /
//! `EDGEFLEET_TOKEN` override them (the same layered loader as the control plane and the agent).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CliError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub url: String,
    pub token: String,
}

/// Values from flags or the environment; `None` keeps what the saved login says.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `$XDG_CONFIG_HOME/edgefleet/login.yaml`, else `~/.config/edgefleet/login.yaml`.
pub fn default_path() -> Result<PathBuf, CliError> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".config"))
            .ok_or_else(|| {
                CliError::Usage("neither XDG_CONFIG_HOME nor HOME is set; pass --config".into())
            })?,
    };
    Ok(base.join("edgefleet").join("login.yaml"))
}

/// The saved login (if the file exists) under the overrides.
pub fn resolve(path: &Path, overrides: &Overrides) -> Result<Login, CliError> {
    let mut layers = config_loader::Layers::new();
    if path.exists() {
        layers = layers
            .file(path)
            .map_err(|error| CliError::Usage(error.to_string()))?;
    }
    layers
        .overrides(overrides)
        .and_then(config_loader::Layers::extract::<Login>)
        .map_err(|error| match error {
            config_loader::LoadError::Invalid { ref key, .. } if key == "url" || key == "token" => {
                CliError::Usage(format!(
                    "not logged in ({error}): run `edgefleet login --url <control plane URL>` or set EDGEFLEET_URL and EDGEFLEET_TOKEN"
                ))
            }
            other => CliError::Usage(other.to_string()),
        })
}

/// Writes the login readable by its owner only (it holds the token), creating the directory if needed.
pub fn save(path: &Path, login: &Login) -> Result<(), CliError> {
    let failed = |error: std::io::Error| {
        CliError::Failed(format!("cannot write {}: {error}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed)?;
    }
    let text = serde_yaml::to_string(login).expect("a login serializes");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    // An existing file keeps its old mode through `open`; the token must not stay readable by others.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)
}
