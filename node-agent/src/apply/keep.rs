//! Keeping one object as an earlier task applied it, for edge autonomy: recreated when it was deleted, and the
//! fields the agent applied taken back when someone changed them. Fields the agent never set are left alone.

use agent_protocol::ApplyTier;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Scope;
use serde_json::Value;

use super::{Applier, FIELD_MANAGER, manifest};
use crate::error::error_chain;

/// What keeping an object found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// The object is there with every field as applied (or it is being deleted, which the next check sees).
    InSync,
    /// It was gone and was created again.
    Recreated,
    /// These fields differed and were applied again.
    Reverted { fields: Vec<String> },
}

/// The most differing fields named in a correction.
const FIELDS_NAMED: usize = 8;

impl Applier {
    /// Keeps `object` (one manifest object, its namespace filled in) as applied, under the apply policy for
    /// `tier`. A field that differs only in how the API server writes it (a quantity such as `0.5` read back as
    /// `500m`) is applied again but is not reported, since the apply then changes nothing.
    pub async fn keep(&self, object: &Value, tier: ApplyTier) -> Result<Kept, String> {
        let text = serde_json::to_string(object).map_err(|err| err.to_string())?;
        let document = manifest::parse(&text)
            .map_err(|err| err.to_string())?
            .into_iter()
            .next()
            .ok_or("the kept object is empty")?;
        self.check_policy(std::slice::from_ref(&document), tier)
            .map_err(|err| err.to_string())?;
        let (resource, capabilities) = self
            .resolve(&document, false)
            .await
            .map_err(|problem| problem.to_string())?;
        let api: Api<DynamicObject> =
            match (&capabilities.scope, &document.object.metadata.namespace) {
                (Scope::Namespaced, Some(namespace)) => {
                    Api::namespaced_with(self.client.clone(), namespace, &resource)
                }
                (Scope::Namespaced, None) => {
                    Api::namespaced_with(self.client.clone(), "default", &resource)
                }
                (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
            };
        let name = document.name();
        let apply = |api: &Api<DynamicObject>| {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let patch = Patch::Apply(document.object.clone());
            let api = api.clone();
            async move { api.patch(name, &params, &patch).await }
        };
        let live = api.get_opt(name).await.map_err(|err| error_chain(&err))?;
        let Some(live) = live else {
            apply(&api).await.map_err(|err| error_chain(&err))?;
            return Ok(Kept::Recreated);
        };
        if live.metadata.deletion_timestamp.is_some() {
            return Ok(Kept::InSync);
        }
        let live_value = serde_json::to_value(&live).map_err(|err| err.to_string())?;
        let mut fields = Vec::new();
        differing_fields(object, &live_value, "", &mut fields);
        if fields.is_empty() {
            return Ok(Kept::InSync);
        }
        let after = apply(&api).await.map_err(|err| error_chain(&err))?;
        if after.metadata.resource_version == live.metadata.resource_version {
            return Ok(Kept::InSync);
        }
        fields.truncate(FIELDS_NAMED);
        Ok(Kept::Reverted { fields })
    }
}

/// Appends the path of every field set in `desired` whose value differs in `live` (or is missing there). Lists
/// are compared element by element, and only what `desired` sets counts: defaults the API server added, and
/// fields other managers own, are not differences. `metadata` is compared for labels and annotations only.
pub fn differing_fields(desired: &Value, live: &Value, path: &str, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => {
            for (key, value) in desired {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if path.is_empty() && key == "metadata" {
                    for part in ["labels", "annotations"] {
                        if let Some(wanted) = value.get(part) {
                            let found = live.get("metadata").and_then(|m| m.get(part));
                            differing_fields(
                                wanted,
                                found.unwrap_or(&Value::Null),
                                &format!("metadata.{part}"),
                                out,
                            );
                        }
                    }
                    continue;
                }
                match live.get(key) {
                    Some(found) => differing_fields(value, found, &child, out),
                    None if value.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(desired), Value::Array(live)) if desired.len() == live.len() => {
            for (index, (wanted, found)) in desired.iter().zip(live).enumerate() {
                differing_fields(wanted, found, &format!("{path}[{index}]"), out);
            }
        }
        (Value::Number(desired), Value::Number(live)) => {
            if desired.as_f64() != live.as_f64() {
                out.push(path.to_owned());
            }
        }
        (desired, live) if desired == live => {}
        _ => out.push(path.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn differences(desired: Value, live: Value) -> Vec<String> {
        let mut out = Vec::new();
        differing_fields(&desired, &live, "", &mut out);
        out
    }

    #[test]
    fn only_fields_the_manifest_sets_count() {
        let desired = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}
        });
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web", "added": "by-someone"},
                         "resourceVersion": "42", "managedFields": []},
            "spec": {"replicas": 2.0, "progressDeadlineSeconds": 600,
                     "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"replicas": 2}
        });
        assert!(differences(desired.clone(), live.clone()).is_empty());

        let mut changed = live;
        changed["spec"]["replicas"] = json!(5);
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        changed["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        assert_eq!(
            differences(desired, changed),
            [
                "metadata.labels.app",
                "spec.replicas",
                "spec.template.spec.containers[0].image"
            ]
        );
    }

    #[test]
    fn a_list_of_another_length_differs_as_a_whole() {
        let desired = json!({"data": {"a": "1"}, "spec": {"ports": [{"port": 80}]}});
        let live = json!({"data": {}, "spec": {"ports": [{"port": 80}, {"port": 81}]}});
        assert_eq!(differences(desired, live), ["data.a", "spec.ports"]);
    }
}
