//! Non-apply PATCH bodies: JSON merge patch, strategic merge patch (handled as a merge patch) and JSON patch.

use serde_json::Value;

use crate::error::ApiError;

/// A parsed PATCH request body.
#[derive(Debug, Clone)]
pub enum Patch {
    /// `application/apply-patch+yaml`: the applied configuration.
    Apply(Value),
    /// `application/merge-patch+json`.
    Merge(Value),
    /// `application/strategic-merge-patch+json`: merged like a merge patch after dropping `$` directives.
    Strategic(Value),
    /// `application/json-patch+json`.
    Json(json_patch::Patch),
}

impl Patch {
    /// Parses a body according to its content type (parameters such as `; charset=utf-8` are ignored).
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let json = || -> Result<Value, ApiError> {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        match media {
            "application/apply-patch+yaml" => serde_yaml::from_slice(body)
                .map(Patch::Apply)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
            "application/merge-patch+json" => json().map(Patch::Merge),
            "application/strategic-merge-patch+json" => json().map(Patch::Strategic),
            "application/json-patch+json" => serde_json::from_slice(body)
                .map(Patch::Json)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}"))),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// Applies a non-apply patch to `target`.
    pub fn apply_to(&self, target: &Value) -> Result<Value, ApiError> {
        let mut result = target.clone();
        match self {
            Patch::Merge(patch) => json_patch::merge(&mut result, patch),
            Patch::Strategic(patch) => {
                let mut patch = patch.clone();
                strip_directives(&mut patch);
                json_patch::merge(&mut result, &patch);
            }
            Patch::Json(patch) => json_patch::patch(&mut result, patch)
                .map_err(|e| ApiError::invalid_json_patch(&e.to_string()))?,
            Patch::Apply(_) => unreachable!("apply patches go through server-side apply"),
        }
        Ok(result)
    }
}

/// Removes strategic-merge directives (`$patch`, `$setElementOrder/...`, `$retainKeys`, ...), which only
/// steer list merging that this emulator does not do.
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_strategic_and_json_patches() {
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}});
        let merge = Patch::parse(
            "application/merge-patch+json",
            br#"{"metadata":{"labels":{"a":null,"c":"3"}}}"#,
        )
        .unwrap();
        assert_eq!(
            merge.apply_to(&target).unwrap()["metadata"]["labels"],
            json!({"b": "2", "c": "3"})
        );
        let smp = Patch::parse(
            "application/strategic-merge-patch+json; charset=utf-8",
            br#"{"$setElementOrder/x":[],"spec":{"x":2,"$retainKeys":["x"]}}"#,
        )
        .unwrap();
        assert_eq!(smp.apply_to(&target).unwrap()["spec"], json!({"x": 2}));
        let jp = Patch::parse(
            "application/json-patch+json",
            br#"[{"op":"replace","path":"/spec/x","value":5}]"#,
        )
        .unwrap();
        assert_eq!(jp.apply_to(&target).unwrap()["spec"]["x"], json!(5));
        assert!(Patch::parse("text/plain", b"").is_err());
    }
}
