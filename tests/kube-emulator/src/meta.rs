//! Small helpers over object metadata shared by the API semantics, the controllers and the log store.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{Value, json};

/// Current time as Kubernetes serializes `metav1.Time` (RFC 3339, whole seconds, `Z`).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a `metav1.Time` string.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

pub fn uid(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

pub fn is_deleting(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

/// Five characters from the alphabet real servers use for `generateName` suffixes.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A controller owner reference pointing at `owner`.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `object` has a controller owner reference to the object with uid `owner_uid`.
pub fn is_controlled_by(object: &Value, owner_uid: &str) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"] == owner_uid && r["controller"] == Value::Bool(true))
}

/// Sets a condition in `conditions` (an array value), keeping `lastTransitionTime` when the status is unchanged
/// and leaving everything untouched when nothing changed, so reconciling twice writes nothing. Empty reasons
/// and messages are left out, as real controllers do.
pub fn set_condition(
    conditions: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    with_update_time: bool,
) {
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("just made an array");
    let text = |c: &Value, key: &str| c[key].as_str().unwrap_or_default().to_string();
    let index = match list.iter().position(|c| c["type"] == kind) {
        Some(i) => {
            let c = &list[i];
            if text(c, "status") == status
                && text(c, "reason") == reason
                && text(c, "message") == message
            {
                return;
            }
            i
        }
        None => {
            list.push(json!({"type": kind}));
            list.len() - 1
        }
    };
    let now = now();
    let c = &mut list[index];
    if text(c, "status") != status {
        c["lastTransitionTime"] = json!(now);
    }
    if with_update_time {
        c["lastUpdateTime"] = json!(now);
    }
    c["status"] = json!(status);
    let fields = c.as_object_mut().expect("conditions are objects");
    for (key, value) in [("reason", reason), ("message", message)] {
        if value.is_empty() {
            fields.remove(key);
        } else {
            fields.insert(key.into(), json!(value));
        }
    }
}

/// The condition of a given type, if present.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}
