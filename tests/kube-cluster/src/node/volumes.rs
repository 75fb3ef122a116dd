//! Volumes of a run container: Secret, ConfigMap, projected (service-account token, ConfigMap, Secret, downward
//! API) and emptyDir volumes materialized under the pod directory. Every mount path is linked at the same path
//! under the container's root directory; the service-account directory is also mounted for real (see `process`).

use std::collections::HashSet;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::objects::{Data, Objects, Source};
use super::{ConfigError, meta};

/// Mode of projected files when the volume sets no `defaultMode` (the API default, 0644).
const DEFAULT_MODE: u32 = 0o644;

/// A path inside a directory: relative, non-empty, without `..` (what the API server validates for keys,
/// item paths and subPaths, and what keeps a malicious key from writing outside the pod directory).
pub fn relative(path: &str) -> Result<PathBuf, ConfigError> {
    let parsed = Path::new(path);
    let plain = parsed
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if path.is_empty() || !plain {
        return Err(ConfigError::Invalid(format!(
            "path {path:?} must be relative and must not contain '..'"
        )));
    }
    Ok(parsed.to_path_buf())
}

/// Where a programme finds its in-cluster credentials: a path it builds itself, so path translation cannot
/// help, and the process runner mounts the volume there in a private mount namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The container's mounts: every mount path (without trailing `/`) and the host directory of the volume mounted
/// at [`SERVICE_ACCOUNT_DIR`], if any.
#[derive(Debug, Default)]
pub struct Mounts {
    pub paths: Vec<String>,
    pub service_account: Option<PathBuf>,
}

/// Materializes the volumes `container` mounts under `<pod_dir>/volumes/<name>` and links each mount path at
/// `<root><mountPath>`.
pub async fn mount(
    objects: &Objects,
    pod: &Value,
    container: &Value,
    pod_dir: &Path,
    root: &Path,
) -> Result<Mounts, ConfigError> {
    let mut mounts = Mounts::default();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap_or_default();
        let volume = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
            .ok_or_else(|| {
                ConfigError::Invalid(format!("volume mount {name:?} names no volume of the pod"))
            })?;
        let dir = pod_dir.join("volumes").join(relative(name)?);
        materialize(objects, pod, volume, &dir)
            .await
            .map_err(|source| ConfigError::Mount {
                volume: name.to_string(),
                source: Box::new(source),
            })?;
        let mount_path = mount["mountPath"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('/');
        let inside = mount_path.strip_prefix('/').ok_or_else(|| {
            ConfigError::Invalid(format!("mountPath {mount_path:?} must be absolute"))
        })?;
        let target = match mount["subPath"].as_str().filter(|s| !s.is_empty()) {
            Some(sub_path) => dir.join(relative(sub_path)?),
            None => dir,
        };
        let link = root.join(relative(inside)?);
        // Mounts are immutable in a pod spec, so a link left by an earlier start of the container is current.
        if link.symlink_metadata().is_err() {
            let io_error = |source| ConfigError::Io {
                path: link.clone(),
                source,
            };
            fs::create_dir_all(link.parent().expect("a path below the root")).map_err(io_error)?;
            std::os::unix::fs::symlink(&target, &link).map_err(io_error)?;
        }
        if mount_path == SERVICE_ACCOUNT_DIR {
            mounts.service_account = Some(target.clone());
        }
        mounts.paths.push(mount_path.to_string());
    }
    Ok(mounts)
}

fn mode(value: &Value) -> Option<u32> {
    value.as_u64().map(|m| (m & 0o7777) as u32)
}

/// Writes one volume's files into `dir` (emptyDir: just the directory, kept across container restarts).
async fn materialize(
    objects: &Objects,
    pod: &Value,
    volume: &Value,
    dir: &Path,
) -> Result<(), ConfigError> {
    let io_error = |source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let namespace = meta::namespace(pod);
    let mut files = Vec::new();
    if volume["secret"].is_object() {
        let spec = &volume["secret"];
        let data = key_source(objects, namespace, Source::Secret, spec, "secretName").await?;
        let default_mode = mode(&spec["defaultMode"]).unwrap_or(DEFAULT_MODE);
        project(&data, spec, default_mode, &mut files)?;
    } else if volume["configMap"].is_object() {
        let spec = &volume["configMap"];
        let data = key_source(objects, namespace, Source::ConfigMap, spec, "name").await?;
        let default_mode = mode(&spec["defaultMode"]).unwrap_or(DEFAULT_MODE);
        project(&data, spec, default_mode, &mut files)?;
    } else if volume["projected"].is_object() {
        let spec = &volume["projected"];
        let default_mode = mode(&spec["defaultMode"]).unwrap_or(DEFAULT_MODE);
        for source in spec["sources"].as_array().into_iter().flatten() {
            projected_source(objects, pod, source, default_mode, &mut files).await?;
        }
    } else if volume["emptyDir"].is_object() {
        return fs::create_dir_all(dir).map_err(io_error);
    } else {
        let kind = volume
            .as_object()
            .and_then(|fields| fields.keys().find(|k| *k != "name"))
            .map_or("this", String::as_str);
        return Err(ConfigError::Unsupported(format!(
            "a {kind} volume (only secret, configMap, projected and emptyDir are)"
        )));
    }
    let files: Vec<(PathBuf, &[u8], u32)> = files
        .iter()
        .map(|(path, bytes, mode)| (path.clone(), bytes.as_slice(), *mode))
        .collect();
    write_files(dir, &files).map_err(io_error)
}

/// The keys of the Secret or ConfigMap a volume (source) names in `name_field`.
async fn key_source(
    objects: &Objects,
    namespace: &str,
    source: Source,
    spec: &Value,
    name_field: &str,
) -> Result<Keys, ConfigError> {
    let optional = spec["optional"] == Value::Bool(true);
    let name = spec[name_field].as_str().unwrap_or_default().to_string();
    let data = objects.data(source, namespace, &name, optional).await?;
    Ok(Keys {
        source,
        namespace: namespace.to_string(),
        name,
        optional,
        data,
    })
}

/// The keys of one Secret or ConfigMap, and where they came from (for error messages).
struct Keys {
    source: Source,
    namespace: String,
    name: String,
    optional: bool,
    data: Data,
}

/// The files of a Secret or ConfigMap source: every key, or the listed `items` at their paths.
fn project(
    keys: &Keys,
    spec: &Value,
    default_mode: u32,
    files: &mut Vec<(PathBuf, Vec<u8>, u32)>,
) -> Result<(), ConfigError> {
    match spec["items"].as_array() {
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or_default();
                let Some(bytes) = keys.data.get(key) else {
                    if keys.optional {
                        continue;
                    }
                    return Err(ConfigError::MissingKey {
                        object: keys.source,
                        namespace: keys.namespace.clone(),
                        name: keys.name.clone(),
                        key: key.to_string(),
                    });
                };
                let path = relative(item["path"].as_str().unwrap_or_default())?;
                files.push((
                    path,
                    bytes.clone(),
                    mode(&item["mode"]).unwrap_or(default_mode),
                ));
            }
        }
        None => {
            for (key, bytes) in &keys.data {
                files.push((relative(key)?, bytes.clone(), default_mode));
            }
        }
    }
    Ok(())
}

/// One source of a projected volume.
async fn projected_source(
    objects: &Objects,
    pod: &Value,
    source: &Value,
    default_mode: u32,
    files: &mut Vec<(PathBuf, Vec<u8>, u32)>,
) -> Result<(), ConfigError> {
    let namespace = meta::namespace(pod);
    if let Some(token) = source.get("serviceAccountToken") {
        let account = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        let jwt = objects
            .service_account_token(
                namespace,
                account,
                (meta::name(pod), meta::uid(pod)),
                token["audience"].as_str(),
                token["expirationSeconds"].as_i64(),
            )
            .await?;
        let path = relative(token["path"].as_str().unwrap_or_default())?;
        files.push((path, jwt.into_bytes(), default_mode));
    } else if let Some(spec) = source.get("configMap") {
        let data = key_source(objects, namespace, Source::ConfigMap, spec, "name").await?;
        project(&data, spec, default_mode, files)?;
    } else if let Some(spec) = source.get("secret") {
        let data = key_source(objects, namespace, Source::Secret, spec, "name").await?;
        project(&data, spec, default_mode, files)?;
    } else if let Some(spec) = source.get("downwardAPI") {
        for item in spec["items"].as_array().into_iter().flatten() {
            let field_path = item["fieldRef"]["fieldPath"].as_str().ok_or_else(|| {
                ConfigError::Unsupported(format!("downward API item {item} (only fieldRef is)"))
            })?;
            let value = super::launch::field(pod, field_path)?;
            let path = relative(item["path"].as_str().unwrap_or_default())?;
            files.push((
                path,
                value.into_bytes(),
                mode(&item["mode"]).unwrap_or(default_mode),
            ));
        }
    } else {
        return Err(ConfigError::Unsupported(format!(
            "projected source {source}"
        )));
    }
    Ok(())
}

/// Writes `files` (relative path, content, mode) into `dir` and removes files of keys that are gone.
fn write_files(dir: &Path, files: &[(PathBuf, &[u8], u32)]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for (path, bytes, mode) in files {
        let target = dir.join(path);
        let parent = target.parent().expect("a path below the volume directory");
        fs::create_dir_all(parent)?;
        // Written beside the target and renamed over it, so a process of another container of the pod never
        // reads a half-written file while this one restarts.
        let mut staging = target.clone().into_os_string();
        staging.push(".kube-cluster-staging");
        let staging = PathBuf::from(staging);
        let _ = fs::remove_file(&staging);
        fs::write(&staging, bytes)?;
        fs::set_permissions(&staging, Permissions::from_mode(*mode))?;
        fs::rename(&staging, &target)?;
    }
    let keep: HashSet<PathBuf> = files.iter().map(|(p, _, _)| dir.join(p)).collect();
    remove_stale(dir, &keep)
}

/// Removes files under `dir` that are not in `keep`: keys dropped from the object since the last start.
fn remove_stale(dir: &Path, keep: &HashSet<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_stale(&path, keep)?;
        } else if !keep.contains(&path) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(relative("a/b.txt").unwrap(), PathBuf::from("a/b.txt"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "."] {
            assert!(relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_get_modes_and_stale_keys_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (b"1".to_vec(), b"2".to_vec());
        let first = [
            (PathBuf::from("one"), one.as_slice(), 0o400),
            (PathBuf::from("sub/two"), two.as_slice(), 0o644),
        ];
        write_files(dir.path(), &first).unwrap();
        let one_path = dir.path().join("one");
        assert_eq!(fs::read(&one_path).unwrap(), b"1");
        let mode = fs::metadata(&one_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        write_files(dir.path(), &first[..1]).unwrap();
        assert!(!dir.path().join("sub/two").exists());
        assert_eq!(fs::read(&one_path).unwrap(), b"1");
    }
}
