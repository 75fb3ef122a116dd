//! Image templates: `images/templates/<name>/template.yaml` (+ Dockerfile) parsed, validated with errors that
//! name the file and field, and loaded into PostgreSQL as versioned revisions at start.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::taskspec::FieldProblem;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantities {
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub requests: Quantities,
    pub limits: Quantities,
}

/// What a `template.yaml` holds (seed 001, Table 4.8: name, version, title, Dockerfile, runtime, process,
/// port, environment variables, latest flag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub name: String,
    pub version: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub runtime: String,
    pub process: String,
    pub port: u32,
    pub health_check_path: String,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    pub resources: Resources,
    /// The user must give an image reference (bring-your-own-image templates).
    #[serde(default)]
    pub image_required: bool,
    #[serde(default)]
    pub default_image: Option<String>,
    /// Marks the version meant for new demos; the loader tracks the newest revision itself, so this is
    /// informational.
    #[serde(default)]
    pub latest: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A parsed, valid template with its files.
#[derive(Debug, Clone)]
pub struct LoadedTemplate {
    pub spec: TemplateSpec,
    pub dockerfile: Option<String>,
    pub content_sha256: String,
}

fn is_semver(value: &str) -> bool {
    let core = value.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Kubernetes quantity syntax, e.g. `250m`, `1`, `0.5`, `512Mi`, `1G`.
fn is_quantity(value: &str) -> bool {
    let number_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(number_end);
    !number.is_empty()
        && number.parse::<f64>().is_ok()
        && ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"].contains(&suffix)
}

impl TemplateSpec {
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                problems.push(FieldProblem {
                    field: field.into(),
                    message: message.into(),
                });
            }
        };
        check(
            crate::domain::names::is_dns_label(&self.name),
            "name",
            "must be a DNS label (lowercase letters, digits, '-')",
        );
        check(
            is_semver(&self.version),
            "version",
            "must be a semantic version such as 1.2.0",
        );
        check(!self.title.trim().is_empty(), "title", "must not be empty");
        check(
            !self.runtime.trim().is_empty(),
            "runtime",
            "must not be empty",
        );
        check(
            !self.process.trim().is_empty(),
            "process",
            "must not be empty",
        );
        check(
            (1..=65535).contains(&self.port),
            "port",
            "must be between 1 and 65535",
        );
        check(
            self.health_check_path.starts_with('/'),
            "health_check_path",
            "must start with '/'",
        );
        for (i, var) in self.env.iter().enumerate() {
            let valid = var
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                && var
                    .name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            check(
                valid,
                &format!("env[{i}].name"),
                "must match [A-Z_][A-Z0-9_]*",
            );
        }
        for (field, value) in [
            ("resources.requests.cpu", &self.resources.requests.cpu),
            ("resources.requests.memory", &self.resources.requests.memory),
            ("resources.limits.cpu", &self.resources.limits.cpu),
            ("resources.limits.memory", &self.resources.limits.memory),
        ] {
            check(
                is_quantity(value),
                field,
                "must be a Kubernetes quantity such as 250m or 512Mi",
            );
        }
        check(
            self.image_required || self.default_image.as_deref().is_some_and(|i| !i.is_empty()),
            "default_image",
            "is required unless image_required is true",
        );
        problems
    }
}

/// Parses and validates the text of a `template.yaml`; errors name `path` and the field.
pub fn parse_template(text: &[u8], path: &Path) -> Result<TemplateSpec, TemplateError> {
    let deserializer = serde_yaml::Deserializer::from_slice(text);
    let spec: TemplateSpec =
        serde_path_to_error::deserialize(deserializer).map_err(|e| TemplateError::Invalid {
            path: path.to_owned(),
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    match spec.validate().into_iter().next() {
        Some(problem) => Err(TemplateError::Invalid {
            path: path.to_owned(),
            field: problem.field,
            message: problem.message,
        }),
        None => Ok(spec),
    }
}

/// Parses and validates one template folder.
pub fn read_template(dir: &Path) -> Result<LoadedTemplate, TemplateError> {
    let path = dir.join("template.yaml");
    let text = std::fs::read(&path).map_err(|source| TemplateError::Read {
        path: path.clone(),
        source,
    })?;
    let spec = parse_template(&text, &path)?;
    let folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if folder != spec.name {
        return Err(TemplateError::Invalid {
            path,
            field: "name".into(),
            message: format!("must match its folder name {folder:?}"),
        });
    }
    let dockerfile_path = dir.join("Dockerfile");
    let dockerfile = match std::fs::read_to_string(&dockerfile_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(TemplateError::Read {
                path: dockerfile_path,
                source,
            });
        }
    };
    if dockerfile.is_none() && !spec.image_required {
        return Err(TemplateError::Invalid {
            path,
            field: "image_required".into(),
            message: "the folder has no Dockerfile, so the template must set image_required: true"
                .into(),
        });
    }
    Ok(LoadedTemplate {
        spec,
        dockerfile,
        content_sha256: folder_digest(dir)?,
    })
}

/// SHA-256 over every file of the folder (relative path and bytes, in path order), so a change to the app or
/// its requirements makes a new revision just like a change to the metadata.
fn folder_digest(dir: &Path) -> Result<String, TemplateError> {
    fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), TemplateError> {
        let entries = std::fs::read_dir(dir).map_err(|source| TemplateError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|source| TemplateError::Read {
            path: file.clone(),
            source,
        })?;
        hasher.update(
            file.strip_prefix(dir)
                .unwrap_or(&file)
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Loads every template folder under `dir` into the store. Invalid templates are rejected one by one (each
/// error names its file and field) without stopping the others; the errors are returned.
pub async fn load_all(store: &Store, dir: &Path) -> Result<Vec<TemplateError>, TemplateError> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| TemplateError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut rejected = Vec::new();
    for folder in folders {
        match read_template(&folder) {
            Ok(template) => {
                let revision = store.upsert_template(&template).await?;
                tracing::info!(name = %template.spec.name, version = %template.spec.version, revision, "image template loaded");
            }
            Err(error) => {
                tracing::error!(%error, "image template rejected");
                rejected.push(error);
            }
        }
    }
    Ok(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "name: demo\nversion: 1.0.0\ntitle: Demo\nruntime: python3.11\nprocess: python app.py\nport: 7860\nhealth_check_path: /\nenv:\n  - {name: MODEL_NAME, default: x}\nresources:\n  requests: {cpu: 250m, memory: 512Mi}\n  limits: {cpu: '1', memory: 1Gi}\ndefault_image: ghcr.io/x/demo:1.0.0\n";

    fn folder(yaml: &str, dockerfile: bool) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("demo");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("template.yaml"), yaml).unwrap();
        if dockerfile {
            std::fs::write(dir.join("Dockerfile"), "FROM python:3.11-slim\n").unwrap();
        }
        root
    }

    #[test]
    fn valid_template_loads_with_a_content_hash() {
        let root = folder(VALID, true);
        let template = read_template(&root.path().join("demo")).unwrap();
        assert_eq!(template.spec.port, 7860);
        assert_eq!(template.content_sha256.len(), 64);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let root = folder(&VALID.replace("port: 7860", "port: 70000"), true);
        let err = read_template(&root.path().join("demo"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("template.yaml: field `port`: must be between 1 and 65535"),
            "{err}"
        );
        let root = folder(&VALID.replace("title: Demo\n", ""), true);
        let err = read_template(&root.path().join("demo"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `title`"), "{err}");
        let root = folder(&VALID.replace("{cpu: 250m", "{cpu: lots"), true);
        let err = read_template(&root.path().join("demo"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `resources.requests.cpu`"), "{err}");
    }

    #[test]
    fn a_template_without_dockerfile_must_require_an_image() {
        let root = folder(VALID, false);
        let err = read_template(&root.path().join("demo"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `image_required`"), "{err}");
    }
}
