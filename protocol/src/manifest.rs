//! The one parser of multi-document Kubernetes YAML, shared by the control plane (checking what users submit, the
//! agent install) and the agent (applying): every problem names the document, and the object as far as it is
//! known.

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

/// Which document of the manifest something is about; printed as `document 2 (Deployment demo/web)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentRef {
    /// Zero-based position among the manifest's YAML documents, empty ones included, so it matches the file.
    pub index: usize,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for DocumentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.index)?;
        let object = match (&self.namespace, &self.name) {
            (Some(namespace), Some(name)) => Some(format!("{namespace}/{name}")),
            (None, Some(name)) => Some(name.clone()),
            _ => None,
        };
        match (&self.kind, object) {
            (Some(kind), Some(object)) => write!(f, " ({kind} {object})"),
            (Some(kind), None) => write!(f, " ({kind})"),
            (None, Some(object)) => write!(f, " ({object})"),
            (None, None) => Ok(()),
        }
    }
}

/// What is wrong with one document, without saying which (see [`ManifestError`]).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Problem {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("expected a mapping with apiVersion, kind and metadata, found {0}")]
    NotAnObject(&'static str),
    #[error("missing or empty `{0}`")]
    MissingField(&'static str),
    #[error("invalid apiVersion {0:?} (expected `v1` or `group/version`)")]
    InvalidApiVersion(String),
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the manifest contains no objects")]
    Empty,
    #[error("{document}: {problem}")]
    Document {
        document: DocumentRef,
        problem: Problem,
    },
}

/// One object of a manifest: where it is, what it is, and the object itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    pub index: usize,
    /// Empty for the core group (`apiVersion: v1`).
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub object: serde_json::Value,
}

impl ManifestObject {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn reference(&self) -> DocumentRef {
        DocumentRef {
            index: self.index,
            kind: Some(self.kind.clone()),
            namespace: self.namespace.clone(),
            name: Some(self.name.clone()),
        }
    }
}

/// Every object of the manifest, or the first problem (an empty manifest is one).
pub fn parse(manifest: &str) -> Result<Vec<ManifestObject>, ManifestError> {
    let (objects, problems) = parse_all(manifest);
    if let Some(problem) = problems.into_iter().next() {
        return Err(problem);
    }
    if objects.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(objects)
}

/// Every object and every problem, for reporting them all at once. Empty documents are skipped; after invalid
/// YAML nothing further is read (the stream cannot be resynchronised).
pub fn parse_all(manifest: &str) -> (Vec<ManifestObject>, Vec<ManifestError>) {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (index, yaml) in serde_yaml::Deserializer::from_str(manifest).enumerate() {
        let value = match serde_json::Value::deserialize(yaml) {
            Ok(value) => value,
            Err(error) => {
                problems.push(ManifestError::Document {
                    document: DocumentRef {
                        index,
                        ..DocumentRef::default()
                    },
                    problem: Problem::Yaml(error.to_string()),
                });
                break;
            }
        };
        match parse_document(index, value) {
            Ok(Some(object)) => objects.push(object),
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    (objects, problems)
}

fn parse_document(
    index: usize,
    value: serde_json::Value,
) -> Result<Option<ManifestObject>, ManifestError> {
    let mut at = DocumentRef {
        index,
        ..DocumentRef::default()
    };
    let fields = match &value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Object(fields) => fields,
        other => {
            return Err(ManifestError::Document {
                document: at,
                problem: Problem::NotAnObject(json_type(other)),
            });
        }
    };
    let text = |value: Option<&serde_json::Value>| {
        value
            .and_then(serde_json::Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    let metadata = fields.get("metadata");
    at.kind = text(fields.get("kind"));
    at.name = text(metadata.and_then(|metadata| metadata.get("name")));
    at.namespace = text(metadata.and_then(|metadata| metadata.get("namespace")));
    let missing = |at: &DocumentRef, field| ManifestError::Document {
        document: at.clone(),
        problem: Problem::MissingField(field),
    };
    let api_version = text(fields.get("apiVersion")).ok_or_else(|| missing(&at, "apiVersion"))?;
    let kind = at.kind.clone().ok_or_else(|| missing(&at, "kind"))?;
    let name = at
        .name
        .clone()
        .ok_or_else(|| missing(&at, "metadata.name"))?;
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version.as_str()),
    };
    if version.is_empty()
        || version.contains('/')
        || (api_version.contains('/') && group.is_empty())
    {
        return Err(ManifestError::Document {
            document: at,
            problem: Problem::InvalidApiVersion(api_version),
        });
    }
    Ok(Some(ManifestObject {
        index,
        group: group.to_owned(),
        version: version.to_owned(),
        kind,
        namespace: at.namespace,
        name,
        object: value,
    }))
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(manifest: &str) -> String {
        parse(manifest).unwrap_err().to_string()
    }

    #[test]
    fn objects_keep_their_file_position_and_empty_documents_are_skipped() {
        // A leading `---` opens the first document; the empty one between two separators counts.
        let objects = parse(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: a}\n---\n",
        )
        .unwrap();
        let found: Vec<(usize, String, &str, Option<&str>)> = objects
            .iter()
            .map(|o| {
                (
                    o.index,
                    o.api_version(),
                    o.kind.as_str(),
                    o.namespace.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (0, "v1".to_owned(), "Namespace", None),
                (2, "apps/v1".to_owned(), "Deployment", Some("a"))
            ]
        );
        assert_eq!(objects[1].group, "apps");
        assert_eq!(objects[1].object["metadata"]["name"], "web");
    }

    #[test]
    fn empty_manifests_are_rejected() {
        assert_eq!(parse("").unwrap_err(), ManifestError::Empty);
        assert_eq!(parse("---\n---\n").unwrap_err(), ManifestError::Empty);
    }

    #[test]
    fn missing_fields_name_the_document_and_what_is_known() {
        assert_eq!(
            error_of(
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n"
            ),
            "document 1 (ConfigMap b): missing or empty `apiVersion`"
        );
        assert_eq!(
            error_of("apiVersion: v1\nmetadata: {name: b}\n"),
            "document 0 (b): missing or empty `kind`"
        );
        assert_eq!(
            error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n"),
            "document 0 (ConfigMap): missing or empty `metadata.name`"
        );
    }

    #[test]
    fn bad_yaml_names_the_document_and_the_position_and_stops_the_reading() {
        let (objects, problems) = parse_all(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n---\napiVersion: v1\n",
        );
        assert_eq!(objects.len(), 1);
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(text.starts_with("document 1: invalid YAML:"), "{text}");
        assert!(text.contains("line"), "{text}");
    }

    #[test]
    fn every_problem_is_reported_when_asked_for_all() {
        let (objects, problems) = parse_all(
            "- a list\n---\napiVersion: a/b/c\nkind: Thing\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
        );
        assert_eq!(objects.len(), 1);
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "document 0: expected a mapping with apiVersion, kind and metadata, found a list",
                "document 1 (Thing x): invalid apiVersion \"a/b/c\" (expected `v1` or `group/version`)"
            ]
        );
    }
}
