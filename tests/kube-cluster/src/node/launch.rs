//! The process a run container becomes: arguments and environment resolved from the pod spec and the store
//! (`envFrom`, `env` with literal values, Secret/ConfigMap key and field references, `$(VAR)` expansion),
//! volumes mounted, mount paths in arguments and environment values translated to the host directories, and the
//! in-cluster environment (`KUBERNETES_SERVICE_HOST`/`PORT`) pointing at the API server.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::objects::{Objects, Source};
use super::{ConfigError, meta, volumes};

/// Used when the simulator itself runs without `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start the process except the binary.
#[derive(Debug)]
pub struct Launch {
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// The host directory to mount at the service-account path, when the container mounts one.
    pub service_account: Option<PathBuf>,
}

/// Where the pod's files live on the host.
pub struct Paths<'a> {
    /// `<pods dir>/<namespace>_<pod>_<uid>`: volumes, and one root directory per container.
    pub pod_dir: &'a Path,
    /// Where the API server listens: what a pod's `KUBERNETES_SERVICE_HOST`/`PORT` name. (A real pod gets the
    /// `kubernetes` Service's address, which needs kube-proxy; none runs here.)
    pub apiserver: std::net::SocketAddr,
}

/// Resolves `container` of `pod` into a process launch, mounting its volumes on the way.
pub async fn prepare(
    objects: &Objects,
    pod: &Value,
    container: &Value,
    paths: &Paths<'_>,
) -> Result<Launch, ConfigError> {
    let name = container["name"].as_str().unwrap_or_default();
    // The container's root: its mounts appear below it at their mount paths, and it is the working directory.
    let root = paths.pod_dir.join("rootfs").join(volumes::relative(name)?);
    let mounts = volumes::mount(objects, pod, container, paths.pod_dir, &root).await?;
    let translate = Translation {
        root: root.to_string_lossy().into_owned(),
        mount_paths: mounts.paths,
    };

    let spec_env = resolve_env(objects, pod, container).await?;
    let strings = |field: &str| -> Vec<String> {
        container[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .map(|s| translate.apply(&expand(s, &spec_env)))
            .collect()
    };
    // `command` replaces the image's entrypoint, which the run-image mapping already names: its first word is
    // a path inside the image (not on this host), so it is replaced by the mapped binary and the rest kept.
    let mut args: Vec<String> = strings("command").into_iter().skip(1).collect();
    args.extend(strings("args"));

    let (host, port) = (paths.apiserver.ip().to_string(), paths.apiserver.port());
    let mut env = BTreeMap::from([
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
        ),
        ("HOME".to_string(), root.to_string_lossy().into_owned()),
        ("HOSTNAME".to_string(), meta::name(pod).to_string()),
        ("KUBERNETES_SERVICE_HOST".to_string(), host.clone()),
        ("KUBERNETES_SERVICE_PORT".to_string(), port.to_string()),
        (
            "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
            port.to_string(),
        ),
        (
            "KUBERNETES_PORT".to_string(),
            format!("tcp://{host}:{port}"),
        ),
    ]);
    // The pod's own variables win, as a container's env wins over its image's.
    env.extend(
        spec_env
            .into_iter()
            .map(|(key, value)| (key, translate.apply(&value))),
    );

    let working_dir = container["workingDir"].as_str().unwrap_or_default();
    let cwd = match working_dir.trim_start_matches('/') {
        "" => root,
        inside => root.join(volumes::relative(inside)?),
    };
    fs::create_dir_all(&cwd).map_err(|source| ConfigError::Io {
        path: cwd.clone(),
        source,
    })?;
    Ok(Launch {
        args,
        env,
        cwd,
        service_account: mounts.service_account,
    })
}

/// The container's variables from `envFrom` then `env` (later ones win), `$(VAR)` references expanded.
async fn resolve_env(
    objects: &Objects,
    pod: &Value,
    container: &Value,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let namespace = meta::namespace(pod);
    let mut env = BTreeMap::new();
    let text = |bytes: &Vec<u8>| String::from_utf8_lossy(bytes).into_owned();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let (source, reference) = if from["secretRef"].is_object() {
            (Source::Secret, &from["secretRef"])
        } else {
            (Source::ConfigMap, &from["configMapRef"])
        };
        let optional = reference["optional"] == Value::Bool(true);
        let name = reference["name"].as_str().unwrap_or_default();
        let prefix = from["prefix"].as_str().unwrap_or_default();
        for (key, value) in objects.data(source, namespace, name, optional).await? {
            env.insert(format!("{prefix}{key}"), text(&value));
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let key = var["name"].as_str().unwrap_or_default().to_string();
        let from = &var["valueFrom"];
        let value = if let Some(value) = var["value"].as_str() {
            expand(value, &env)
        } else if from["fieldRef"].is_object() {
            field(
                pod,
                from["fieldRef"]["fieldPath"].as_str().unwrap_or_default(),
            )?
        } else if from["secretKeyRef"].is_object() || from["configMapKeyRef"].is_object() {
            let (source, reference) = if from["secretKeyRef"].is_object() {
                (Source::Secret, &from["secretKeyRef"])
            } else {
                (Source::ConfigMap, &from["configMapKeyRef"])
            };
            let optional = reference["optional"] == Value::Bool(true);
            let name = reference["name"].as_str().unwrap_or_default();
            let wanted = reference["key"].as_str().unwrap_or_default();
            match objects
                .data(source, namespace, name, optional)
                .await?
                .get(wanted)
            {
                Some(value) => text(value),
                None if optional => continue,
                None => {
                    return Err(ConfigError::MissingKey {
                        object: source,
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        key: wanted.to_string(),
                    });
                }
            }
        } else if from.is_object() {
            return Err(ConfigError::Unsupported(format!(
                "env {key}: valueFrom {from}"
            )));
        } else {
            String::new()
        };
        env.insert(key, value);
    }
    Ok(env)
}

/// A `fieldRef` of the downward API.
pub fn field(pod: &Value, path: &str) -> Result<String, ConfigError> {
    for (prefix, map) in [
        ("metadata.labels", "labels"),
        ("metadata.annotations", "annotations"),
    ] {
        if let Some(key) = path
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
        {
            let value = &pod["metadata"][map][key];
            return Ok(value.as_str().unwrap_or_default().to_string());
        }
    }
    let pointer = match path {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "metadata.uid" => "/metadata/uid",
        "spec.nodeName" => "/spec/nodeName",
        "spec.serviceAccountName" => "/spec/serviceAccountName",
        "status.podIP" => "/status/podIP",
        "status.hostIP" => "/status/hostIP",
        _ => return Err(ConfigError::Unsupported(format!("fieldRef {path:?}"))),
    };
    Ok(pod
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// Kubernetes variable expansion: `$(NAME)` becomes the variable's value when it is defined and stays as
/// written otherwise; `$$` is a literal `$`.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|inner| inner.split_once(')'))
        {
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Rewrites container paths under a mount path to the host path below the container's root, since a host
/// process cannot see files at the container's mount paths.
struct Translation {
    root: String,
    mount_paths: Vec<String>,
}

/// Characters that continue a path component: a mount path only matches where none of these is next to it.
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '+' | '@')
}

impl Translation {
    /// Replaces every occurrence of a mount path that stands as a whole path or path prefix (not preceded by
    /// a path character or `/`, followed by `/`, the end, or a non-path character), longest mount first.
    fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut index = 0;
        while index < text.len() {
            let preceded = text[..index]
                .chars()
                .next_back()
                .is_some_and(|c| c == '/' || is_path_char(c));
            let found = (!preceded)
                .then(|| {
                    self.mount_paths
                        .iter()
                        .filter(|m| {
                            text[index..].starts_with(m.as_str())
                                && text[index + m.len()..]
                                    .chars()
                                    .next()
                                    .is_none_or(|c| c == '/' || !is_path_char(c))
                        })
                        .max_by_key(|m| m.len())
                })
                .flatten();
            match found {
                Some(mount_path) => {
                    out.push_str(&self.root);
                    out.push_str(mount_path);
                    index += mount_path.len();
                }
                None => {
                    let c = text[index..].chars().next().expect("index is in bounds");
                    out.push(c);
                    index += c.len_utf8();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$(B) $$(A) $$ $ $(A", &env), "$(B) $(A) $ $ $(A");
    }

    #[test]
    fn translation_rewrites_whole_mount_paths_only() {
        let t = Translation {
            root: "/pods/p/app".into(),
            mount_paths: vec!["/etc/app".into(), "/etc/app/certs".into(), "/tmp".into()],
        };
        assert_eq!(t.apply("/etc/app/ca.crt"), "/pods/p/app/etc/app/ca.crt");
        assert_eq!(
            t.apply("--ca=/etc/app/certs/x,/tmp"),
            "--ca=/pods/p/app/etc/app/certs/x,/pods/p/app/tmp"
        );
        assert_eq!(t.apply("cat /etc/app"), "cat /pods/p/app/etc/app");
        for untouched in [
            "/etc/application",
            "/x/etc/app",
            "etc/app",
            "/etc/app.d",
            "/tmpfs",
        ] {
            assert_eq!(t.apply(untouched), untouched);
        }
        // An already translated path is not translated again.
        let once = t.apply("/etc/app/x");
        assert_eq!(t.apply(&once), once);
    }
}
