//! Turns a multi-document YAML manifest into Kubernetes objects in apply order, naming the document of every problem.

use std::fmt;

use kube::api::{DynamicObject, GroupVersionKind};
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

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the manifest contains no objects")]
    Empty,
    #[error("{document}: invalid YAML: {reason}")]
    Yaml {
        document: DocumentRef,
        reason: String,
    },
    #[error("{document}: expected a mapping with apiVersion, kind and metadata, found {found}")]
    NotAnObject {
        document: DocumentRef,
        found: &'static str,
    },
    #[error("{document}: missing or empty `{field}`")]
    MissingField {
        document: DocumentRef,
        field: &'static str,
    },
    #[error("{document}: invalid apiVersion {api_version:?} (expected `v1` or `group/version`)")]
    InvalidApiVersion {
        document: DocumentRef,
        api_version: String,
    },
    #[error("{document}: {reason}")]
    InvalidObject {
        document: DocumentRef,
        reason: String,
    },
}

/// One object of the manifest with its position and type.
#[derive(Debug, Clone)]
pub struct Document {
    pub index: usize,
    pub gvk: GroupVersionKind,
    pub object: DynamicObject,
}

impl Document {
    pub fn reference(&self) -> DocumentRef {
        DocumentRef {
            index: self.index,
            kind: Some(self.gvk.kind.clone()),
            namespace: self.object.metadata.namespace.clone(),
            name: self.object.metadata.name.clone(),
        }
    }

    pub fn api_version(&self) -> String {
        self.gvk.api_version()
    }

    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn is_custom_resource_definition(&self) -> bool {
        self.gvk.group == "apiextensions.k8s.io" && self.gvk.kind == "CustomResourceDefinition"
    }

    fn applies_first(&self) -> bool {
        (self.gvk.group.is_empty() && self.gvk.kind == "Namespace")
            || self.is_custom_resource_definition()
    }
}

/// Parses every document (skipping empty ones), failing on the first malformed one.
pub fn parse(manifest: &str) -> Result<Vec<Document>, ManifestError> {
    let mut documents = Vec::new();
    for (index, yaml) in serde_yaml::Deserializer::from_str(manifest).enumerate() {
        let at = DocumentRef {
            index,
            ..DocumentRef::default()
        };
        let value = serde_json::Value::deserialize(yaml).map_err(|err| ManifestError::Yaml {
            document: at.clone(),
            reason: err.to_string(),
        })?;
        if let Some(document) = parse_document(index, value)? {
            documents.push(document);
        }
    }
    if documents.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(documents)
}

/// Namespaces and CustomResourceDefinitions first, because later objects live in them or are of their kinds;
/// otherwise document order.
pub fn apply_order(mut documents: Vec<Document>) -> Vec<Document> {
    documents.sort_by_key(|document| !document.applies_first());
    documents
}

fn parse_document(
    index: usize,
    value: serde_json::Value,
) -> Result<Option<Document>, ManifestError> {
    let mut at = DocumentRef {
        index,
        ..DocumentRef::default()
    };
    let fields = match &value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Object(fields) => fields,
        other => {
            return Err(ManifestError::NotAnObject {
                document: at,
                found: json_type(other),
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

    let api_version =
        text(fields.get("apiVersion")).ok_or_else(|| ManifestError::MissingField {
            document: at.clone(),
            field: "apiVersion",
        })?;
    let kind = at.kind.clone().ok_or_else(|| ManifestError::MissingField {
        document: at.clone(),
        field: "kind",
    })?;
    if at.name.is_none() {
        return Err(ManifestError::MissingField {
            document: at,
            field: "metadata.name",
        });
    }
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version.as_str()),
    };
    if version.is_empty()
        || version.contains('/')
        || (api_version.contains('/') && group.is_empty())
    {
        return Err(ManifestError::InvalidApiVersion {
            document: at,
            api_version,
        });
    }
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let object: DynamicObject =
        serde_json::from_value(value).map_err(|err| ManifestError::InvalidObject {
            document: at.clone(),
            reason: err.to_string(),
        })?;
    Ok(Some(Document { index, gvk, object }))
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

    const MIXED: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
data: {greeting: hello}
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec: {replicas: 1}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
"#;

    fn error_of(manifest: &str) -> String {
        parse(manifest).unwrap_err().to_string()
    }

    #[test]
    fn documents_keep_their_file_position_and_empty_ones_are_skipped() {
        let documents = parse(MIXED).unwrap();
        let indices: Vec<usize> = documents.iter().map(|document| document.index).collect();
        assert_eq!(indices, [0, 2, 3, 4]);
        assert_eq!(
            documents[1].gvk,
            GroupVersionKind::gvk("apps", "v1", "Deployment")
        );
        assert_eq!(documents[1].api_version(), "apps/v1");
        assert_eq!(documents[0].object.data["data"]["greeting"], "hello");
    }

    #[test]
    fn namespaces_and_crds_go_first_then_document_order() {
        let ordered = apply_order(parse(MIXED).unwrap());
        let kinds: Vec<&str> = ordered
            .iter()
            .map(|document| document.gvk.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "Namespace",
                "ConfigMap",
                "Deployment"
            ]
        );
    }

    #[test]
    fn a_leading_separator_and_trailing_empty_documents_are_fine() {
        let documents =
            parse("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n").unwrap();
        assert_eq!(documents.len(), 1);
    }

    #[test]
    fn empty_manifests_are_rejected() {
        assert_eq!(parse("").unwrap_err(), ManifestError::Empty);
        assert_eq!(parse("---\n---\n").unwrap_err(), ManifestError::Empty);
    }

    #[test]
    fn missing_fields_name_the_document_and_what_is_known() {
        let err = error_of(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n",
        );
        assert_eq!(
            err,
            "document 1 (ConfigMap b): missing or empty `apiVersion`"
        );

        let err = error_of("apiVersion: v1\nmetadata: {name: b}\n");
        assert_eq!(err, "document 0 (b): missing or empty `kind`");

        let err = error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n");
        assert_eq!(
            err,
            "document 0 (ConfigMap): missing or empty `metadata.name`"
        );
    }

    #[test]
    fn bad_yaml_names_the_document_and_the_position() {
        let err = error_of(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n",
        );
        assert!(err.starts_with("document 1: invalid YAML:"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn non_mappings_and_bad_api_versions_are_rejected() {
        assert_eq!(
            error_of("- just\n- a list\n"),
            "document 0: expected a mapping with apiVersion, kind and metadata, found a list"
        );
        let err = error_of("apiVersion: a/b/c\nkind: Thing\nmetadata: {name: x}\n");
        assert_eq!(
            err,
            "document 0 (Thing x): invalid apiVersion \"a/b/c\" (expected `v1` or `group/version`)"
        );
    }

    #[test]
    fn malformed_metadata_is_reported_for_the_object() {
        let err = error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: [a]}\n");
        assert!(err.starts_with("document 0 (ConfigMap x): "), "{err}");
    }
}
