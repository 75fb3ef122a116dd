//! Label selectors (query strings and `spec.selector` objects) and field selectors.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        match self {
            Self::Equals(k, v) => get(k) == Some(v.as_str()),
            Self::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Self::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Self::NotIn(k, set) => get(k).is_none_or(|v| !set.contains(v)),
            Self::Exists(k) => get(k).is_some(),
            Self::DoesNotExist(k) => get(k).is_none(),
        }
    }
}

/// A conjunction of label requirements; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax: `a=b,c==d,e!=f,g in (h,i),j notin (k),l,!m`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let invalid = |why: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: {why} (in label selector {text:?})"
            ))
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(checked_key(key.trim()).map_err(|e| invalid(&e))?)
            } else if let Some((key, rest)) = split_set_operator(part) {
                let (negated, values) = rest;
                let key = checked_key(key).map_err(|e| invalid(&e))?;
                let values = values
                    .strip_prefix('(')
                    .and_then(|v| v.strip_suffix(')'))
                    .ok_or_else(|| invalid("expected '(' and ')' around the set of values"))?
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .collect();
                if negated {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                }
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(
                    checked_key(key.trim()).map_err(|e| invalid(&e))?,
                    value.trim().to_string(),
                )
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(
                    checked_key(key.trim()).map_err(|e| invalid(&e))?,
                    value.trim().to_string(),
                )
            } else {
                Requirement::Exists(checked_key(part).map_err(|e| invalid(&e))?)
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Builds a selector from a `{matchLabels, matchExpressions}` object (e.g. a Deployment's `spec.selector`).
    pub fn from_object(selector: &Value) -> Self {
        let mut requirements = Vec::new();
        if let Some(labels) = selector["matchLabels"].as_object() {
            for (k, v) in labels {
                requirements.push(Requirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        for expr in selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = expr["key"].as_str().unwrap_or_default().to_string();
            let values: BTreeSet<String> = expr["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            requirements.push(match expr["operator"].as_str().unwrap_or_default() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                _ => Requirement::DoesNotExist(key),
            });
        }
        Self { requirements }
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// Splits on commas that are not inside a `( ... )` value set.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `key in (..)` / `key notin (..)`: returns the key and (negated, value set text).
fn split_set_operator(part: &str) -> Option<(&str, (bool, &str))> {
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next()?;
    let rest = words.next()?.trim_start();
    if let Some(values) = rest.strip_prefix("notin") {
        Some((key, (true, values.trim())))
    } else {
        rest.strip_prefix("in")
            .map(|values| (key, (false, values.trim())))
    }
}

/// Label keys: optional DNS prefix and `/`, then a name of alphanumerics, `-`, `_`, `.` (at most 63 characters).
fn checked_key(key: &str) -> Result<String, String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

/// Field selector: equality requirements on dotted object paths (`metadata.name=x,status.phase!=Running`).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    requirements: Vec<(Vec<String>, bool, String)>,
}

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            requirements.push((
                path.trim().split('.').map(String::from).collect(),
                equal,
                value.trim().to_string(),
            ));
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(path, equal, expected)| {
            let actual = path.iter().try_fold(object, |v, k| v.get(k));
            let actual = match actual {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *expected) == *equal
        })
    }
}

/// The label and field selectors of a list, watch or deleteCollection request.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({"app": "a", "tier": "web"}));
        let yes = [
            "app=a",
            "app==a",
            "app!=b",
            "app in (a,b)",
            "app in (a, b),tier",
            "x notin (a)",
            "app notin (b)",
            "!x",
            "tier",
            "",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        let no = [
            "app=b",
            "app!=a",
            "app in (b,c)",
            "app notin (a)",
            "!app",
            "x",
            "app=a,tier=db",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        assert!(LabelSelector::parse("app in (a").is_err());
        assert!(LabelSelector::parse("bad key!=x").is_err());
    }

    #[test]
    fn selector_objects_and_field_selectors() {
        let sel = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "a"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]
        }));
        assert!(sel.matches(&obj(json!({"app": "a", "tier": "web"}))));
        assert!(!sel.matches(&obj(json!({"app": "a"}))));
        let f = FieldSelector::parse("metadata.name=n,metadata.namespace!=other").unwrap();
        assert!(f.matches(&obj(json!({}))));
        assert!(
            !FieldSelector::parse("metadata.name=m")
                .unwrap()
                .matches(&obj(json!({})))
        );
    }
}
