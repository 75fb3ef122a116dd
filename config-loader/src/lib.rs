//! The one way both binaries read their configuration: a YAML file, then environment variables with a prefix,
//! then explicit overrides such as command-line flags, each layer winning over the one before. Errors name the
//! key (`config key `tasks.lease_seconds`: invalid type ...`). Durations are written the humantime way
//! (`250ms`, `30s`, `5m`) through [`duration`].

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The configuration document as the layers build it up.
#[derive(Debug, Clone)]
pub struct Layers {
    document: Value,
}

impl Default for Layers {
    fn default() -> Self {
        Self {
            document: Value::Mapping(Mapping::new()),
        }
    }
}

impl Layers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The YAML file at `path`; an empty file sets nothing.
    pub fn file(mut self, path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let layer: Value = serde_yaml::from_str(&text).map_err(|source| LoadError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        if !layer.is_null() {
            merge(&mut self.document, layer);
        }
        Ok(self)
    }

    /// Variables `<prefix><KEY>` from `vars` (the process environment, or a list in tests); `__` separates
    /// nesting levels, so with prefix `EDGEFLEET_CP_`, `EDGEFLEET_CP_CLICKHOUSE__URL` sets `clickhouse.url`.
    /// Numbers and booleans keep their type.
    pub fn env(
        mut self,
        prefix: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, LoadError> {
        for (name, raw) in vars {
            let Some(key) = name.strip_prefix(prefix) else {
                continue;
            };
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            let value = match serde_yaml::from_str::<Value>(&raw) {
                Ok(typed @ (Value::Bool(_) | Value::Number(_))) => typed,
                _ => Value::String(raw),
            };
            let mut layer = value;
            for part in path.iter().rev() {
                let mut section = Mapping::new();
                section.insert(Value::String(part.clone()), layer);
                layer = Value::Mapping(section);
            }
            if !merges_cleanly(&self.document, &layer) {
                return Err(invalid(
                    path.join("."),
                    format!("{name} overrides a key that is not a section"),
                ));
            }
            merge(&mut self.document, layer);
        }
        Ok(self)
    }

    /// Values that win over everything before them, e.g. command-line flags. Fields the caller leaves out of
    /// the serialization (`skip_serializing_if`) keep what the earlier layers set.
    pub fn overrides(mut self, values: &impl Serialize) -> Result<Self, LoadError> {
        let layer = serde_yaml::to_value(values)
            .map_err(|error| invalid("", format!("cannot read the overrides: {error}")))?;
        merge(&mut self.document, layer);
        Ok(self)
    }

    /// The merged document as `T`; an error names the key that does not fit.
    pub fn extract<T: DeserializeOwned>(self) -> Result<T, LoadError> {
        serde_path_to_error::deserialize(self.document).map_err(|error| {
            let mut key = error.path().to_string();
            let message = error.into_inner().to_string();
            // serde names a missing field only in its message; the key should name it too.
            if let Some(field) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                key = if key == "." {
                    field.to_owned()
                } else {
                    format!("{key}.{field}")
                };
            }
            invalid(key, message)
        })
    }
}

/// Sections merge key by key; anything else replaces what was there.
fn merge(into: &mut Value, layer: Value) {
    match (into, layer) {
        (Value::Mapping(into), Value::Mapping(layer)) => {
            for (key, value) in layer {
                match into.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, layer) => *into = layer,
    }
}

/// Whether every section `layer` descends through is a section (or absent) in `document`.
fn merges_cleanly(document: &Value, layer: &Value) -> bool {
    match (document, layer) {
        (Value::Mapping(document), Value::Mapping(layer)) => {
            layer
                .iter()
                .all(|(key, value)| match (document.get(key), value) {
                    (None, _) | (Some(_), Value::Bool(_) | Value::Number(_) | Value::String(_)) => {
                        true
                    }
                    (Some(existing), nested) => {
                        existing.is_mapping() && merges_cleanly(existing, nested)
                    }
                })
        }
        _ => false,
    }
}

/// Durations as humantime text (`250ms`, `30s`, `1h 30m`) or a bare number of seconds, for
/// `#[serde(default, with = "config_loader::duration")]` on an `Option<Duration>` field.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Seconds(u64),
        Human(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<Text>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Text::Seconds(seconds)) => Ok(Some(Duration::from_secs(seconds))),
            Some(Text::Human(text)) => {
                let text = text.trim();
                // Flags and environment variables arrive as text, `10` included.
                if let Ok(seconds) = text.parse::<u64>() {
                    return Ok(Some(Duration::from_secs(seconds)));
                }
                humantime::parse_duration(text).map(Some).map_err(|error| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a duration such as 500ms, 10s or 2m ({error})"
                    ))
                })
            }
        }
    }

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => {
                serializer.serialize_str(&humantime::format_duration(*duration).to_string())
            }
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        name: String,
        #[serde(default)]
        tasks: Tasks,
        #[serde(default, with = "duration")]
        heartbeat: Option<Duration>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Tasks {
        #[serde(default)]
        lease_seconds: u32,
        #[serde(default)]
        enabled: bool,
    }

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        heartbeat: Option<String>,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn environment_wins_over_the_file_and_flags_win_over_both() {
        let yaml = file(
            "name: from-file\ntasks:\n  lease_seconds: 30\n  enabled: false\nheartbeat: 10s\n",
        );
        let settings: Settings = Layers::new()
            .file(yaml.path())
            .unwrap()
            .env(
                "APP_",
                env(&[
                    ("APP_TASKS__LEASE_SECONDS", "45"),
                    ("APP_TASKS__ENABLED", "true"),
                    ("OTHER_NAME", "ignored"),
                ]),
            )
            .unwrap()
            .overrides(&Flags {
                name: Some("from-flag".into()),
                heartbeat: None,
            })
            .unwrap()
            .extract()
            .unwrap();
        assert_eq!(
            settings,
            Settings {
                name: "from-flag".into(),
                tasks: Tasks {
                    lease_seconds: 45,
                    enabled: true
                },
                heartbeat: Some(Duration::from_secs(10)),
            }
        );
    }

    #[test]
    fn errors_name_the_key() {
        let error = Layers::new()
            .env(
                "APP_",
                env(&[("APP_NAME", "x"), ("APP_TASKS__LEASE_SECS", "45")]),
            )
            .unwrap()
            .extract::<Settings>()
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config key `tasks.lease_secs`: unknown field `lease_secs`"),
            "{error}"
        );

        let error = Layers::new()
            .env("APP_", env(&[("APP_NAME", "x"), ("APP_HEARTBEAT", "soon")]))
            .unwrap()
            .extract::<Settings>()
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config key `heartbeat`: \"soon\" is not a duration"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_key_is_named() {
        let error = Layers::new().extract::<Settings>().unwrap_err().to_string();
        assert_eq!(error, "config key `name`: missing field `name`");
    }

    #[test]
    fn a_value_cannot_be_overridden_as_a_section() {
        let yaml = file("name: plain\n");
        let error = Layers::new()
            .file(yaml.path())
            .unwrap()
            .env("APP_", env(&[("APP_NAME__INNER", "x")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "config key `name.inner`: APP_NAME__INNER overrides a key that is not a section"
        );
    }

    #[test]
    fn durations_take_humantime_text_or_seconds() {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default, with = "duration")]
            every: Option<Duration>,
        }
        let read =
            |text: &str| -> Option<Duration> { serde_yaml::from_str::<Only>(text).unwrap().every };
        assert_eq!(read("every: 250ms"), Some(Duration::from_millis(250)));
        assert_eq!(read("every: 1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(read("every: 15"), Some(Duration::from_secs(15)));
        assert_eq!(read("every: '15'"), Some(Duration::from_secs(15)));
        assert_eq!(read("{}"), None);
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = Layers::new()
            .file(Path::new("/nonexistent/edgefleet.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read config file /nonexistent/edgefleet.yaml"),
            "{error}"
        );
    }
}
