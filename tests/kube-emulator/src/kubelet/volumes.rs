//! Volumes of a run container: Secret, ConfigMap and emptyDir volumes materialized under the pod directory,
//! and every mount path linked at the same path under the container's root directory.

use std::collections::HashSet;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::ConfigError;
use super::objects::{Objects, Source};
use crate::meta;

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

/// Materializes the volumes `container` mounts under `<pod_dir>/volumes/<name>` and links each mount path at
/// `<root><mountPath>`; returns the mount paths (without trailing `/`).
pub fn mount(
    objects: &Objects,
    pod: &Value,
    container: &Value,
    pod_dir: &Path,
    root: &Path,
) -> Result<Vec<String>, ConfigError> {
    let mut mount_paths = Vec::new();
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
        materialize(objects, meta::namespace(pod), volume, &dir).map_err(|source| {
            ConfigError::Mount {
                volume: name.to_string(),
                source: Box::new(source),
            }
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
        mount_paths.push(mount_path.to_string());
    }
    Ok(mount_paths)
}

fn mode(value: &Value) -> Option<u32> {
    value.as_u64().map(|m| (m & 0o7777) as u32)
}

/// Writes one volume's files into `dir` (emptyDir: just the directory, kept across container restarts).
fn materialize(
    objects: &Objects,
    namespace: &str,
    volume: &Value,
    dir: &Path,
) -> Result<(), ConfigError> {
    let io_error = |source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let (source, spec, name) = if volume["secret"].is_object() {
        (Source::Secret, &volume["secret"], "secretName")
    } else if volume["configMap"].is_object() {
        (Source::ConfigMap, &volume["configMap"], "name")
    } else if volume["emptyDir"].is_object() {
        return fs::create_dir_all(dir).map_err(io_error);
    } else {
        let kind = volume
            .as_object()
            .and_then(|fields| fields.keys().find(|k| *k != "name"))
            .map_or("this", String::as_str);
        return Err(ConfigError::Unsupported(format!(
            "a {kind} volume (only secret, configMap and emptyDir are)"
        )));
    };
    let optional = spec["optional"] == Value::Bool(true);
    let object_name = spec[name].as_str().unwrap_or_default();
    let data = objects.data(source, namespace, object_name, optional)?;
    let default_mode = mode(&spec["defaultMode"]).unwrap_or(DEFAULT_MODE);
    let mut files = Vec::new();
    match spec["items"].as_array() {
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or_default();
                let Some(bytes) = data.get(key) else {
                    if optional {
                        continue;
                    }
                    return Err(ConfigError::MissingKey {
                        object: source,
                        namespace: namespace.to_string(),
                        name: object_name.to_string(),
                        key: key.to_string(),
                    });
                };
                let path = relative(item["path"].as_str().unwrap_or_default())?;
                files.push((path, bytes, mode(&item["mode"]).unwrap_or(default_mode)));
            }
        }
        None => {
            for (key, bytes) in &data {
                files.push((relative(key)?, bytes, default_mode));
            }
        }
    }
    write_files(dir, &files).map_err(io_error)
}

/// Writes `files` (relative path, content, mode) into `dir` and removes files of keys that are gone.
fn write_files(dir: &Path, files: &[(PathBuf, &Vec<u8>, u32)]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for (path, bytes, mode) in files {
        let target = dir.join(path);
        let parent = target.parent().expect("a path below the volume directory");
        fs::create_dir_all(parent)?;
        // Written beside the target and renamed over it, so a process of another container of the pod never
        // reads a half-written file while this one restarts.
        let mut staging = target.clone().into_os_string();
        staging.push(".kube-emulator-staging");
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
            (PathBuf::from("one"), &one, 0o400),
            (PathBuf::from("sub/two"), &two, 0o644),
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
