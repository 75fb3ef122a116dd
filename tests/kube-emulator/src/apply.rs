//! Server-side apply and managed fields: field ownership per manager in the real `fieldsV1` (`f:`) format,
//! apply merging with removal of dropped fields, conflict detection, and `Update` ownership for other writes.
//!
//! Lists are atomic here: a list is one field owned as a whole (real structured merge splits keyed lists
//! such as `containers` by their merge key).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Path of map keys from the object root to a leaf field.
pub type FieldPath = Vec<String>;

/// Object metadata that no manager owns (identity and server-maintained fields).
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// Who makes a change: the field manager, how, through which apiVersion and subresource.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    /// `Some("status")` for writes through the status subresource.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time recorded in the entry.
    pub time: &'a str,
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: BTreeSet<FieldPath>,
}

impl Entry {
    fn is(&self, actor: &Actor<'_>, operation: Operation) -> bool {
        self.manager == actor.manager
            && self.operation == operation
            && self.subresource.as_deref() == actor.subresource
    }

    /// The manager as conflict messages print it.
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            text.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

/// Leaf fields of an object (scalars, lists and empty maps), skipping identity and server-maintained fields.
pub fn leaves(object: &Value) -> BTreeMap<FieldPath, &Value> {
    fn walk<'v>(value: &'v Value, path: &mut FieldPath, out: &mut BTreeMap<FieldPath, &'v Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let skip = match path.as_slice() {
                        [] => key == "apiVersion" || key == "kind",
                        [meta] if meta == "metadata" => SYSTEM_METADATA.contains(&key.as_str()),
                        _ => false,
                    };
                    if skip {
                        continue;
                    }
                    path.push(key.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ if path.is_empty() => {}
            _ => {
                out.insert(path.clone(), value);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(object, &mut Vec::new(), &mut out);
    out
}

fn lookup<'v>(object: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(object, |v, key| v.get(key))
}

fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for key in parents {
        match current.get_mut(key) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(last);
    }
}

/// Recursively merges `patch` into `target`: maps merge key by key, anything else replaces.
fn merge_into(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_into(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `.metadata.labels.app`, as structured-merge-diff prints paths.
fn path_string(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

fn read_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let operation = match e["operation"].as_str()? {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return None,
            };
            let mut fields = BTreeSet::new();
            decode_fields(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Some(Entry {
                manager: e["manager"].as_str()?.to_string(),
                operation,
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: e["time"].as_str().unwrap_or_default().to_string(),
                subresource: e["subresource"].as_str().map(String::from),
                fields,
            })
        })
        .collect()
}

fn decode_fields(tree: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(map) = tree.as_object() else { return };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (key, child) in map {
        if key == "." {
            out.insert(path.clone());
        } else if let Some(field) = key.strip_prefix("f:") {
            path.push(field.to_string());
            decode_fields(child, path, out);
            path.pop();
        }
    }
}

fn encode_fields(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for key in path {
            node = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fieldsV1 nodes are maps");
        }
    }
    // A path that is both owned and has owned children is marked with ".", as in the real format.
    fn mark(node: &mut Map<String, Value>, path: &mut FieldPath, fields: &BTreeSet<FieldPath>) {
        for (key, child) in node.iter_mut() {
            let Some(field) = key.strip_prefix("f:") else {
                continue;
            };
            path.push(field.to_string());
            if let Some(child) = child.as_object_mut()
                && !child.is_empty()
            {
                mark(child, path, fields);
                if fields.contains(path) {
                    child.insert(".".into(), json!({}));
                }
            }
            path.pop();
        }
    }
    mark(&mut root, &mut Vec::new(), fields);
    Value::Object(root)
}

/// Writes entries back into `metadata.managedFields`, dropping fields that no longer exist and empty entries.
fn write_entries(object: &mut Value, mut entries: Vec<Entry>) {
    let existing: BTreeSet<FieldPath> = leaves(object).into_keys().collect();
    for entry in &mut entries {
        entry.fields.retain(|f| existing.contains(f));
    }
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (a.operation, &a.time, &a.manager).cmp(&(b.operation, &b.time, &b.manager))
    });
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation.as_str(),
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode_fields(&e.fields),
            });
            if let Some(sub) = e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    if list.is_empty() {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        object["metadata"]["managedFields"] = Value::Array(list);
    }
}

/// Managed fields with entry times blanked, so that a write changing nothing but times counts as a no-op.
pub fn without_times(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(list) = copy["metadata"]["managedFields"].as_array_mut() {
        for entry in list {
            if let Some(e) = entry.as_object_mut() {
                e.remove("time");
            }
        }
    }
    copy
}

/// Removes `null` values from an applied configuration: they express no opinion.
fn drop_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(drop_nulls);
    }
}

/// Applies `config` (already stripped of fields this endpoint ignores) on top of `live` for `actor`.
/// Returns the merged object with updated managed fields, or a 409 naming the conflicting managers and fields.
pub fn apply(
    live: &Value,
    config: &Value,
    actor: &Actor<'_>,
    force: bool,
) -> Result<Value, ApiError> {
    let mut config = config.clone();
    drop_nulls(&mut config);
    let applied: BTreeMap<FieldPath, &Value> = leaves(&config);
    let mut merged = live.clone();
    merge_into(&mut merged, &config);

    let mut entries = read_entries(live);
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if entry.is(actor, Operation::Apply) {
            continue;
        }
        for owned in &entry.fields {
            let touched = applied.keys().any(|p| related(p, owned));
            if touched && lookup(live, owned) != lookup(&merged, owned) {
                conflicts.push((index, owned.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&entries, &conflicts));
        }
        for (index, path) in &conflicts {
            entries[*index].fields.remove(path);
        }
    }

    // Fields this manager applied before but no longer sends go away unless someone else still owns them.
    let previous = entries
        .iter()
        .find(|e| e.is(actor, Operation::Apply))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in previous.iter().filter(|p| !applied.contains_key(*p)) {
        let still_wanted = applied.keys().any(|p| related(p, dropped));
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !e.is(actor, Operation::Apply))
            .any(|e| e.fields.iter().any(|f| related(f, dropped)));
        if !still_wanted && !owned_elsewhere {
            remove_path(&mut merged, dropped);
        }
    }

    let fields: BTreeSet<FieldPath> = applied.keys().cloned().collect();
    match entries.iter_mut().find(|e| e.is(actor, Operation::Apply)) {
        Some(entry) => {
            entry.fields = fields;
            entry.api_version = actor.api_version.to_string();
            entry.time = actor.time.to_string();
        }
        None => entries.push(Entry {
            manager: actor.manager.to_string(),
            operation: Operation::Apply,
            api_version: actor.api_version.to_string(),
            time: actor.time.to_string(),
            subresource: actor.subresource.map(String::from),
            fields,
        }),
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}

fn conflict_error(entries: &[Entry], conflicts: &[(usize, FieldPath)]) -> ApiError {
    let causes: Vec<(String, String)> = conflicts
        .iter()
        .map(|(i, path)| (entries[*i].describe(), path_string(path)))
        .collect();
    let message = if let [(manager, path)] = causes.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
    } else {
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (manager, path) in &causes {
            by_manager.entry(manager).or_default().push(path);
        }
        let lines: Vec<String> = by_manager
            .iter()
            .flat_map(|(manager, paths)| {
                std::iter::once(format!("conflicts with {manager}:"))
                    .chain(paths.iter().map(|p| format!("- {p}")))
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            causes.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, &causes)
}

/// Records an `Update` by `actor` that turned `old` (absent on create) into `new`: the actor owns every field it
/// added or changed, other managers lose those fields, and fields that disappeared are owned by nobody.
pub fn record_update(old: Option<&Value>, new: &mut Value, actor: &Actor<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let before = old.map(leaves).unwrap_or_default();
    let changed: BTreeSet<FieldPath> = leaves(new)
        .into_iter()
        .filter(|(path, value)| before.get(path) != Some(value))
        .map(|(path, _)| path)
        .collect();
    if !changed.is_empty() {
        for entry in entries
            .iter_mut()
            .filter(|e| !e.is(actor, Operation::Update))
        {
            entry
                .fields
                .retain(|f| !changed.iter().any(|c| related(c, f)));
        }
        match entries.iter_mut().find(|e| e.is(actor, Operation::Update)) {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.api_version = actor.api_version.to_string();
                entry.time = actor.time.to_string();
            }
            None => entries.push(Entry {
                manager: actor.manager.to_string(),
                operation: Operation::Update,
                api_version: actor.api_version.to_string(),
                time: actor.time.to_string(),
                subresource: actor.subresource.map(String::from),
                fields: changed,
            }),
        }
    }
    write_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2024-01-01T00:00:00Z";

    fn actor(manager: &str) -> Actor<'_> {
        Actor {
            manager,
            api_version: "v1",
            subresource: None,
            time: T,
        }
    }

    #[test]
    fn fields_v1_round_trips_with_dot_marker() {
        let fields: BTreeSet<FieldPath> = [
            vec!["metadata".to_string(), "labels".to_string()],
            vec!["metadata".into(), "labels".into(), "a".into()],
            vec!["data".into(), "x".into()],
        ]
        .into_iter()
        .collect();
        let encoded = encode_fields(&fields);
        assert_eq!(
            encoded,
            json!({"f:data": {"f:x": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
        let mut decoded = BTreeSet::new();
        decode_fields(&encoded, &mut Vec::new(), &mut decoded);
        assert_eq!(decoded, fields);
    }

    #[test]
    fn reapply_removes_dropped_fields_unless_co_owned() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let first = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let obj = apply(&live, &first, &actor("m1"), false).unwrap();
        let obj = apply(
            &obj,
            &json!({"metadata": {"labels": {"b": "2"}}}),
            &actor("m2"),
            false,
        )
        .unwrap();
        let obj = apply(&obj, &json!({"data": {"k": "v"}}), &actor("m1"), false).unwrap();
        assert_eq!(obj["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(obj["data"], json!({"k": "v"}));
    }

    #[test]
    fn conflict_only_on_different_value_and_force_takes_over() {
        let live = json!({"metadata": {"name": "c"}});
        let obj = apply(&live, &json!({"data": {"k": "v"}}), &actor("m1"), false).unwrap();
        assert!(apply(&obj, &json!({"data": {"k": "v"}}), &actor("m2"), false).is_ok());
        let err = apply(&obj, &json!({"data": {"k": "w"}}), &actor("m2"), false).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"m1\": .data.k"
        );
        let forced = apply(&obj, &json!({"data": {"k": "w"}}), &actor("m2"), true).unwrap();
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["m2"]);
    }

    #[test]
    fn update_takes_changed_fields_from_other_managers() {
        let live = json!({"metadata": {"name": "c"}});
        let obj = apply(
            &live,
            &json!({"data": {"k": "v", "j": "1"}}),
            &actor("m1"),
            false,
        )
        .unwrap();
        let mut new = obj.clone();
        new["data"]["k"] = json!("changed");
        record_update(Some(&obj), &mut new, &actor("editor"));
        let entries = read_entries(&new);
        let m1 = entries.iter().find(|e| e.manager == "m1").unwrap();
        let editor = entries.iter().find(|e| e.manager == "editor").unwrap();
        assert_eq!(m1.fields.len(), 1);
        assert!(
            editor
                .fields
                .contains(&vec!["data".to_string(), "k".to_string()])
        );
        let err = apply(
            &new,
            &json!({"data": {"k": "v", "j": "1"}}),
            &actor("m1"),
            false,
        )
        .unwrap_err();
        assert!(
            err.message.contains("\"editor\" using v1"),
            "{}",
            err.message
        );
    }
}
