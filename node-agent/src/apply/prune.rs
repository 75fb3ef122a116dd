//! Deletes the objects of an [`ObjectSet`] that an apply did not (re)apply, or all of them for a delete task.

use agent_protocol::{ApplyTier, ObjectOutcome, ObjectResult, ObjectSet};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Preconditions};

use super::{
    Applier, ApplyError, ApplyFailure, DELETION_WAIT, ObjectProblem, ProgressFn, object_fields,
    wait_gone,
};
use crate::error::error_chain;
use crate::tasklog::TaskLog;

impl Applier {
    /// Deletes every object of `set` that is not in `keep` (the objects just applied), namespaced kinds first and
    /// Namespaces last, so each deletion is reported before a namespace takes the rest with it. Each deletion
    /// is waited for (a namespace stays Terminating while its contents go), so "deleted" means gone.
    /// Kinds the apply policy does not allow the task's tier are refused, and objects in protected namespaces
    /// are never deleted.
    pub async fn prune(
        &self,
        set: &ObjectSet,
        tier: ApplyTier,
        keep: &[ObjectResult],
        log: &TaskLog,
        progress: ProgressFn<'_>,
    ) -> Result<Vec<ObjectResult>, ApplyFailure> {
        let refused = |reason: String| ApplyFailure {
            error: ApplyError::InvalidObjectSet(reason),
            objects: Vec::new(),
        };
        let kinds = checked_kinds(set).map_err(refused)?;
        for gvk in &kinds {
            self.policy
                .check_kind(&gvk.api_version(), &gvk.kind, tier)
                .map_err(|violation| refused(violation.to_string()))?;
        }
        let mut deleted = Vec::new();
        for gvk in kinds {
            if let Err(problem) = self
                .prune_kind(&gvk, &set.label_selector, keep, log, progress, &mut deleted)
                .await
            {
                let error = ApplyError::Prune {
                    kind: gvk.kind.clone(),
                    label_selector: set.label_selector.clone(),
                    problem,
                };
                return Err(ApplyFailure {
                    error,
                    objects: deleted,
                });
            }
        }
        log.info(
            format!(
                "pruned {} objects matching {}",
                deleted.len(),
                set.label_selector
            ),
            &[("label_selector", set.label_selector.clone())],
        );
        Ok(deleted)
    }

    async fn prune_kind(
        &self,
        gvk: &GroupVersionKind,
        label_selector: &str,
        keep: &[ObjectResult],
        log: &TaskLog,
        progress: ProgressFn<'_>,
        deleted: &mut Vec<ObjectResult>,
    ) -> Result<(), ObjectProblem> {
        let found = self.discovery.resolve(gvk).await.map_err(|err| {
            ObjectProblem::Unreachable(format!("discovery failed: {}", error_chain(&err)))
        })?;
        // A kind the server does not serve has no objects to delete.
        let Some((resource, _)) = found else {
            return Ok(());
        };
        let listed = Api::<DynamicObject>::all_with(self.client.clone(), &resource)
            .list(&ListParams::default().labels(label_selector))
            .await
            .map_err(ObjectProblem::from_kube)?;
        for object in listed {
            let namespace = object.namespace();
            let name = object.name_any();
            let home = match gvk.kind.as_str() {
                "Namespace" if gvk.group.is_empty() => Some(name.as_str()),
                _ => namespace.as_deref(),
            };
            if home.is_some_and(|ns| self.policy.is_protected(ns)) {
                log.warn(
                    format!(
                        "{} {name} kept: its namespace is protected by the apply policy",
                        gvk.kind
                    ),
                    &[("kept", name.clone())],
                );
                continue;
            }
            if keep
                .iter()
                .any(|kept| same_object(kept, gvk, namespace.as_deref(), &name))
            {
                continue;
            }
            let api: Api<DynamicObject> = match &namespace {
                Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
                None => Api::all_with(self.client.clone(), &resource),
            };
            let Some(message) = delete_if_selected(&api, object, label_selector).await? else {
                log.info(
                    format!(
                        "{} {} kept: another apply took it over since it was listed",
                        gvk.kind, name
                    ),
                    &[("kept", name.clone())],
                );
                continue;
            };
            let result = ObjectResult {
                document_index: 0,
                api_version: gvk.api_version(),
                kind: gvk.kind.clone(),
                namespace: namespace.unwrap_or_default(),
                name,
                outcome: ObjectOutcome::Deleted.into(),
                message: message.to_owned(),
            };
            log.info(
                format!(
                    "{} {}/{} {message}",
                    result.kind, result.namespace, result.name
                ),
                &object_fields(&result),
            );
            progress("object deleted", vec![result.clone()]);
            deleted.push(result);
        }
        Ok(())
    }
}

/// Deletes `object` (as listed) if it still matches `label_selector`, and waits for it to be gone. The delete
/// carries the listed resourceVersion, so an object another apply took over meanwhile (a new demo of the same
/// name relabelling it) is never deleted; an object that only changed otherwise (status updates) is looked at
/// again. `None` when it was kept.
async fn delete_if_selected(
    api: &Api<DynamicObject>,
    mut object: DynamicObject,
    label_selector: &str,
) -> Result<Option<&'static str>, ObjectProblem> {
    let name = object.name_any();
    loop {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: object.metadata.resource_version.clone(),
                uid: object.metadata.uid.clone(),
            }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                let uid = object.metadata.uid.as_deref();
                let gone = wait_gone(api, &name, uid, DELETION_WAIT)
                    .await
                    .map_err(ObjectProblem::from_kube)?;
                return Ok(Some(if gone {
                    "deleted"
                } else {
                    "deletion requested; still terminating"
                }));
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Some("already gone")),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let same_name = format!("metadata.name={name}");
                let still = api
                    .list(
                        &ListParams::default()
                            .labels(label_selector)
                            .fields(&same_name),
                    )
                    .await
                    .map_err(ObjectProblem::from_kube)?;
                match still.items.into_iter().next() {
                    Some(current) if current.metadata.uid == object.metadata.uid => {
                        object = current
                    }
                    Some(_) => return Ok(None),
                    None => match api.get_opt(&name).await.map_err(ObjectProblem::from_kube)? {
                        None => return Ok(Some("already gone")),
                        Some(_) => return Ok(None),
                    },
                }
            }
            Err(err) => return Err(ObjectProblem::from_kube(err)),
        }
    }
}

/// The set's kinds in deletion order; refuses sets that could select more than meant.
fn checked_kinds(set: &ObjectSet) -> Result<Vec<GroupVersionKind>, String> {
    let selector = set.label_selector.trim();
    // An empty selector matches every object of the kinds: never what a prune means.
    if selector.is_empty()
        || selector
            .split(',')
            .any(|requirement| requirement.trim().is_empty())
    {
        return Err(format!(
            "label selector {:?} must have at least one requirement and no empty ones",
            set.label_selector
        ));
    }
    if set.kinds.is_empty() {
        return Err("no kinds listed".into());
    }
    let mut kinds = Vec::with_capacity(set.kinds.len());
    for kind in &set.kinds {
        let (group, version) = match kind.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", kind.api_version.as_str()),
        };
        if version.is_empty() || kind.kind.is_empty() || version.contains('/') {
            return Err(format!(
                "kind {:?} in {:?} is not a valid kind and apiVersion",
                kind.kind, kind.api_version
            ));
        }
        kinds.push(GroupVersionKind::gvk(group, version, &kind.kind));
    }
    kinds.sort_by_key(|gvk| gvk.group.is_empty() && gvk.kind == "Namespace");
    Ok(kinds)
}

/// Whether `kept` names the same object; versions of one group are views of the same objects.
fn same_object(
    kept: &ObjectResult,
    gvk: &GroupVersionKind,
    namespace: Option<&str>,
    name: &str,
) -> bool {
    let group = kept
        .api_version
        .split_once('/')
        .map_or("", |(group, _)| group);
    group == gvk.group
        && kept.kind == gvk.kind
        && kept.namespace == namespace.unwrap_or_default()
        && kept.name == name
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_protocol::ObjectKind;

    fn set(selector: &str, kinds: &[(&str, &str)]) -> ObjectSet {
        ObjectSet {
            label_selector: selector.into(),
            kinds: kinds
                .iter()
                .map(|(api_version, kind)| ObjectKind {
                    api_version: (*api_version).into(),
                    kind: (*kind).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn namespaces_are_deleted_last() {
        let kinds = checked_kinds(&set(
            "edgefleet.io/demo=d1",
            &[
                ("v1", "Namespace"),
                ("apps/v1", "Deployment"),
                ("v1", "Service"),
            ],
        ))
        .unwrap();
        let order: Vec<&str> = kinds.iter().map(|gvk| gvk.kind.as_str()).collect();
        assert_eq!(order, ["Deployment", "Service", "Namespace"]);
    }

    #[test]
    fn sets_that_could_select_everything_are_refused() {
        for selector in ["", "  ", "a=b,", ",a=b"] {
            let err = checked_kinds(&set(selector, &[("v1", "Service")])).unwrap_err();
            assert!(
                err.contains("at least one requirement"),
                "{selector:?}: {err}"
            );
        }
        let err = checked_kinds(&set("a=b", &[])).unwrap_err();
        assert_eq!(err, "no kinds listed");
        let err = checked_kinds(&set("a=b", &[("apps/v1/x", "Deployment")])).unwrap_err();
        assert!(err.contains("not a valid kind"), "{err}");
    }

    #[test]
    fn kept_objects_match_across_versions_of_a_group() {
        let kept = ObjectResult {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "demo".into(),
            name: "web".into(),
            ..ObjectResult::default()
        };
        let gvk = GroupVersionKind::gvk("apps", "v1beta2", "Deployment");
        assert!(same_object(&kept, &gvk, Some("demo"), "web"));
        assert!(!same_object(&kept, &gvk, Some("other"), "web"));
        assert!(!same_object(
            &kept,
            &GroupVersionKind::gvk("", "v1", "Deployment"),
            Some("demo"),
            "web"
        ));
    }
}
