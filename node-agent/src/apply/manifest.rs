//! Turns a multi-document YAML manifest into Kubernetes objects in apply order, naming the document of every
//! problem. The parsing itself is `agent_protocol::manifest`, the one the control plane checks manifests with.

use agent_protocol::manifest;
pub use agent_protocol::manifest::DocumentRef;
use kube::api::{DynamicObject, GroupVersionKind};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error(transparent)]
    Parse(#[from] manifest::ManifestError),
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
pub fn parse(yaml: &str) -> Result<Vec<Document>, ManifestError> {
    manifest::parse(yaml)?
        .into_iter()
        .map(|parsed| {
            let gvk = GroupVersionKind::gvk(&parsed.group, &parsed.version, &parsed.kind);
            let document = parsed.reference();
            let object: DynamicObject = serde_json::from_value(parsed.object).map_err(|err| {
                ManifestError::InvalidObject {
                    document,
                    reason: err.to_string(),
                }
            })?;
            Ok(Document {
                index: parsed.index,
                gvk,
                object,
            })
        })
        .collect()
}

/// Namespaces and CustomResourceDefinitions first, because later objects live in them or are of their kinds;
/// otherwise document order.
pub fn apply_order(mut documents: Vec<Document>) -> Vec<Document> {
    documents.sort_by_key(|document| !document.applies_first());
    documents
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
    fn malformed_metadata_is_reported_for_the_object() {
        let err = error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: [a]}\n");
        assert!(err.starts_with("document 0 (ConfigMap x): "), "{err}");
    }
}
