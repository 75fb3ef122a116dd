//! REST verb semantics on top of the store: get/list, create, update, patch, server-side apply, delete and
//! deleteCollection with resourceVersion, generation, managed fields, subresources, finalizers and
//! namespace lifecycle rules.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use crate::admission::{self, Allocator};
use crate::apply::{self, Actor};
use crate::error::ApiError;
use crate::meta;
use crate::patch::Patch;
use crate::resources::ResourceInfo;
use crate::selectors::Filter;
use crate::store::{Key, Store, Txn};

/// Who writes and how.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions<'a> {
    pub manager: &'a str,
    /// `Some("status")` or `Some("scale")` for writes through a subresource.
    pub subresource: Option<&'a str>,
    /// `dryRun=All`: run every step but store nothing.
    pub dry_run: bool,
}

/// DELETE preconditions from `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Paging of a list request.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// The API semantics shared by the HTTP layer and the controllers.
pub struct Api {
    pub store: Arc<Store>,
    allocator: Allocator,
}

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_PLURAL: &str = "customresourcedefinitions";

fn key(res: &ResourceInfo, namespace: &str, name: &str) -> Key {
    Key {
        group: res.group.clone(),
        plural: res.plural.clone(),
        namespace: if res.namespaced {
            namespace.to_string()
        } else {
            String::new()
        },
        name: name.to_string(),
    }
}

/// The object as served through `res`: all versions share storage, so the served apiVersion is set on the way out.
pub fn present(res: &ResourceInfo, object: &Value) -> Value {
    let mut object = object.clone();
    object["apiVersion"] = json!(res.api_version());
    object["kind"] = json!(res.kind);
    object
}

/// Everything except metadata and status: what `metadata.generation` tracks.
fn spec_part(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(k);
        }
    }
    copy
}

const SERVER_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Copies server-maintained metadata from `old` into `new` (clients cannot change it). Managed fields are
/// not copied: the field manager always derives them from the stored object.
fn restore_server_metadata(old: &Value, new: &mut Value) {
    for field in SERVER_METADATA {
        match old["metadata"].get(*field) {
            Some(v) => new["metadata"][*field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(*field);
                }
            }
        }
    }
}

/// Status is only written through `/status`; `/status` only writes status.
fn mask_subresource(
    res: &ResourceInfo,
    old: &Value,
    new: Value,
    subresource: Option<&str>,
) -> Value {
    let take_status = |mut target: Value, from: &Value| {
        match from.get("status") {
            Some(status) => target["status"] = status.clone(),
            None => {
                if let Some(m) = target.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        target
    };
    match subresource {
        Some("status") => take_status(old.clone(), &new),
        _ if res.status_subresource => take_status(new, old),
        _ => new,
    }
}

/// Rejects a body whose kind, apiVersion, name or namespace contradict the request URL.
fn check_identity(
    res: &ResourceInfo,
    namespace: &str,
    name: Option<&str>,
    body: &Value,
) -> Result<(), ApiError> {
    if !body.is_object() || !(body["metadata"].is_object() || body["metadata"].is_null()) {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    }
    if let Some(kind) = body["kind"].as_str()
        && kind != res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({kind}) does not match the kind of the resource ({})",
            res.kind
        )));
    }
    if let Some(api_version) = body["apiVersion"].as_str()
        && api_version != res.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if let (Some(url_name), Some(body_name)) = (name, body["metadata"]["name"].as_str())
        && url_name != body_name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
        )));
    }
    if res.namespaced
        && let Some(body_ns) = body["metadata"]["namespace"].as_str()
        && !body_ns.is_empty()
        && body_ns != namespace
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// `metadata.resourceVersion` in a write body is an optimistic-concurrency precondition.
fn check_resource_version(res: &ResourceInfo, old: &Value, body: &Value) -> Result<(), ApiError> {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() && old["metadata"]["resourceVersion"] != rv => {
            Err(ApiError::stale_resource_version(res, meta::name(old)))
        }
        _ => Ok(()),
    }
}

/// Namespaced writes need an existing namespace that is not being deleted.
fn check_namespace(
    txn: &Txn<'_>,
    res: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    if !res.namespaced {
        return Ok(());
    }
    let ns_key = Key {
        group: String::new(),
        plural: "namespaces".into(),
        namespace: String::new(),
        name: namespace.to_string(),
    };
    match txn.get(&ns_key) {
        None => Err(ApiError::namespace_not_found(namespace)),
        Some(ns) if meta::is_deleting(ns) => Err(ApiError::forbidden(
            res,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Removes an object (or, when it has finalizers, marks it deleting) and cascades CRD removal.
fn delete_in(txn: &mut Txn<'_>, key: &Key, dry_run: bool) -> Option<Value> {
    let mut object = txn.get(key)?.clone();
    let is_namespace = key.group.is_empty() && key.plural == "namespaces";
    let has_finalizers = object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if is_namespace || has_finalizers {
        // Namespaces go through Terminating (the namespace controller removes their content first);
        // finalizers keep an object until its finalizing controller removes them.
        if meta::is_deleting(&object) {
            return Some(object);
        }
        object["metadata"]["deletionTimestamp"] = json!(meta::now());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if is_namespace {
            object["status"]["phase"] = json!("Terminating");
        }
        return Some(if dry_run {
            object
        } else {
            txn.put(key.clone(), object)
        });
    }
    if dry_run {
        return Some(object);
    }
    let removed = txn.remove(key)?;
    if key.group == CRD_GROUP && key.plural == CRD_PLURAL {
        remove_custom_resources(txn, &removed);
    }
    Some(removed)
}

fn remove_custom_resources(txn: &mut Txn<'_>, crd: &Value) {
    txn.registry_mut().unregister_crd(meta::name(crd));
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let keys: Vec<Key> = txn
        .list(group, plural, None)
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        txn.remove(&k);
    }
}

/// Checks that a CRD can be served before it is stored.
fn check_crd(txn: &Txn<'_>, res: &ResourceInfo, object: &Value) -> Result<(), ApiError> {
    if res.group != CRD_GROUP || res.plural != CRD_PLURAL {
        return Ok(());
    }
    let mut registry = txn.registry().clone();
    registry.register_crd(object).map_err(|errors| {
        let causes: Vec<(String, &str, String)> = errors
            .into_iter()
            .map(|(field, message)| (field, "FieldValueInvalid", message))
            .collect();
        ApiError::invalid(res, meta::name(object), &causes)
    })
}

/// Stores a written object; a CRD write (re)registers the kinds it serves.
fn store(txn: &mut Txn<'_>, res: &ResourceInfo, key: Key, object: Value) -> Value {
    let stored = txn.put(key, object);
    if res.group == CRD_GROUP && res.plural == CRD_PLURAL {
        // Validated by check_crd before the write.
        let _ = txn.registry_mut().register_crd(&stored);
    }
    stored
}

impl Api {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            allocator: Allocator::default(),
        }
    }

    /// The served resource `group/version/plural`, if any.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.store
            .transact(|txn| txn.registry().find(group, version, plural))
    }

    pub fn get(&self, res: &ResourceInfo, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.store.transact(|txn| {
            txn.get(&key(res, namespace, name))
                .map(|o| present(res, o))
                .ok_or_else(|| ApiError::not_found(res, name))
        })
    }

    /// A `{Kind}List` of matching objects, paged by namespace/name order when `limit` is set.
    pub fn list(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        filter: &Filter,
        page: &Page,
    ) -> Result<Value, ApiError> {
        let start = match &page.continue_token {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        self.store.transact(|txn| {
            let mut items = Vec::new();
            let mut next = None;
            let mut remaining = 0usize;
            for (k, object) in txn.list(&res.group, &res.plural, namespace) {
                if start
                    .as_ref()
                    .is_some_and(|s| (&k.namespace, &k.name) <= (&s.0, &s.1))
                {
                    continue;
                }
                if !filter.matches(object) {
                    continue;
                }
                if page.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                    remaining += 1;
                    continue;
                }
                items.push(present(res, object));
                next = Some((k.namespace.clone(), k.name.clone()));
            }
            let mut metadata = json!({ "resourceVersion": txn.resource_version().to_string() });
            if remaining > 0
                && let Some(last) = next
            {
                metadata["continue"] = json!(encode_continue(&last));
                metadata["remainingItemCount"] = json!(remaining);
            }
            Ok(json!({
                "kind": res.list_kind(),
                "apiVersion": res.api_version(),
                "metadata": metadata,
                "items": items,
            }))
        })
    }

    pub fn create(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        body: Value,
        opts: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        check_identity(res, namespace, None, &body)?;
        self.store
            .transact(|txn| {
                self.insert_new(txn, res, namespace, body, Some(opts.manager), opts.dry_run)
            })
            .map(|o| present(res, &o))
    }

    /// Creates an object; `manager` is `None` when managed fields were already computed (apply-create).
    fn insert_new(
        &self,
        txn: &mut Txn<'_>,
        res: &ResourceInfo,
        namespace: &str,
        mut object: Value,
        manager: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let mut name = meta::name(&object).to_string();
        if name.is_empty()
            && let Some(prefix) = object["metadata"]["generateName"].as_str()
            && !prefix.is_empty()
        {
            name = loop {
                let candidate = format!("{prefix}{}", meta::random_suffix());
                if txn.get(&key(res, namespace, &candidate)).is_none() {
                    break candidate;
                }
            };
            object["metadata"]["name"] = json!(name);
        }
        if res.namespaced {
            object["metadata"]["namespace"] = json!(namespace);
        } else if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if !name.is_empty() {
            check_namespace(txn, res, namespace, &name)?;
        }
        let k = key(res, namespace, &name);
        if !name.is_empty() && txn.get(&k).is_some() {
            return Err(ApiError::already_exists(res, &name));
        }
        let now = meta::now();
        if let Some(manager) = manager {
            let api_version = res.api_version();
            let actor = Actor {
                manager,
                api_version: &api_version,
                subresource: None,
                time: &now,
            };
            apply::record_update(None, &mut object, &actor);
        }
        for field in SERVER_METADATA {
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove(*field);
            }
        }
        object["apiVersion"] = json!(res.api_version());
        object["kind"] = json!(res.kind);
        object["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        object["metadata"]["creationTimestamp"] = json!(now);
        if res.generation {
            object["metadata"]["generation"] = json!(1);
        }
        if res.status_subresource
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
        }
        admission::default_object(res, &mut object, &self.allocator);
        admission::default_on_create(res, &mut object);
        admission::validate(res, &object)?;
        check_crd(txn, res, &object)?;
        if dry_run {
            return Ok(object);
        }
        Ok(store(txn, res, k, object))
    }

    /// Read-modify-write under the store lock: `change` gets the current object and returns the desired one.
    /// This is PUT, merge/JSON patch, scale and every controller write.
    pub fn update_with(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        opts: WriteOptions<'_>,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        self.store
            .transact(|txn| {
                let k = key(res, namespace, name);
                let old = txn
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(res, name))?;
                let body = change(&present(res, &old))?;
                check_identity(res, namespace, Some(name), &body)?;
                check_resource_version(res, &old, &body)?;
                let mut new = mask_subresource(res, &old, body, opts.subresource);
                restore_server_metadata(&old, &mut new);
                new["metadata"]["name"] = json!(name);
                if res.namespaced {
                    new["metadata"]["namespace"] = json!(namespace);
                }
                let now = meta::now();
                let api_version = res.api_version();
                let actor = Actor {
                    manager: opts.manager,
                    api_version: &api_version,
                    subresource: opts.subresource,
                    time: &now,
                };
                apply::record_update(Some(&old), &mut new, &actor);
                admission::default_object(res, &mut new, &self.allocator);
                self.finish_update(txn, res, k, &old, new, opts.dry_run)
            })
            .map(|o| present(res, &o))
    }

    /// PUT: full replacement, 409 when the body's resourceVersion is stale.
    pub fn replace(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        body: Value,
        opts: WriteOptions<'_>,
    ) -> Result<Value, ApiError> {
        self.update_with(res, namespace, name, opts, |_| Ok(body))
    }

    /// PATCH of any type; returns the object and whether it was created (apply of a missing object).
    pub fn patch(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        patch: &Patch,
        opts: WriteOptions<'_>,
        force: bool,
    ) -> Result<(Value, bool), ApiError> {
        match patch {
            Patch::Apply(config) => {
                self.server_side_apply(res, namespace, name, config, opts, force)
            }
            other => self
                .update_with(res, namespace, name, opts, |old| other.apply_to(old))
                .map(|o| (o, false)),
        }
    }

    fn server_side_apply(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        config: &Value,
        opts: WriteOptions<'_>,
        force: bool,
    ) -> Result<(Value, bool), ApiError> {
        check_identity(res, namespace, Some(name), config)?;
        if config["kind"].is_null() || config["apiVersion"].is_null() {
            return Err(ApiError::bad_request(
                "apply patches must set apiVersion and kind",
            ));
        }
        if !config["metadata"]["managedFields"].is_null() {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        // Only the part of the configuration this endpoint writes is applied (and owned).
        let mut config = config.clone();
        if let Some(map) = config.as_object_mut() {
            match opts.subresource {
                Some("status") => map.retain(|k, _| k == "status" || k == "metadata"),
                _ if res.status_subresource => {
                    map.remove("status");
                }
                _ => {}
            }
            if opts.subresource == Some("status")
                && let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.retain(|k, _| k == "name" || k == "namespace" || k == "resourceVersion");
            }
        }
        let now = meta::now();
        let api_version = res.api_version();
        let actor = Actor {
            manager: opts.manager,
            api_version: &api_version,
            subresource: opts.subresource,
            time: &now,
        };
        let result = self.store.transact(|txn| {
            let k = key(res, namespace, name);
            match txn.get(&k).cloned() {
                Some(old) => {
                    check_resource_version(res, &old, &config)?;
                    let mut new = apply::apply(&old, &config, &actor, force)?;
                    restore_server_metadata(&old, &mut new);
                    admission::default_object(res, &mut new, &self.allocator);
                    self.finish_update(txn, res, k, &old, new, opts.dry_run)
                        .map(|o| (o, false))
                }
                None if opts.subresource.is_some() => Err(ApiError::not_found(res, name)),
                None => {
                    let mut skeleton = json!({
                        "apiVersion": api_version,
                        "kind": res.kind,
                        "metadata": {"name": name},
                    });
                    if res.namespaced {
                        skeleton["metadata"]["namespace"] = json!(namespace);
                    }
                    let new = apply::apply(&skeleton, &config, &actor, force)?;
                    self.insert_new(txn, res, namespace, new, None, opts.dry_run)
                        .map(|o| (o, true))
                }
            }
        })?;
        Ok((present(res, &result.0), result.1))
    }

    /// Common end of every update: validate, detect no-ops, bump generation, store (or finish a deletion).
    fn finish_update(
        &self,
        txn: &mut Txn<'_>,
        res: &ResourceInfo,
        k: Key,
        old: &Value,
        mut new: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        admission::validate(res, &new)?;
        check_crd(txn, res, &new)?;
        if apply::without_times(old) == apply::without_times(&new) {
            return Ok(old.clone());
        }
        if res.generation && spec_part(old) != spec_part(&new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        let finalized = meta::is_deleting(&new)
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty)
            && !(k.group.is_empty() && k.plural == "namespaces");
        if dry_run {
            return Ok(new);
        }
        if finalized {
            txn.put(k.clone(), new);
            return Ok(delete_in(txn, &k, false).expect("object was just stored"));
        }
        Ok(store(txn, res, k, new))
    }

    pub fn delete(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.store
            .transact(|txn| {
                let k = key(res, namespace, name);
                let object = txn.get(&k).ok_or_else(|| ApiError::not_found(res, name))?;
                if let Some(uid) = &pre.uid
                    && uid != meta::uid(object)
                {
                    let why = format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(object)
                    );
                    return Err(ApiError::conflict(res, name, &why));
                }
                if let Some(rv) = &pre.resource_version
                    && object["metadata"]["resourceVersion"] != rv.as_str()
                {
                    let why = format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object["metadata"]["resourceVersion"].as_str().unwrap_or_default()
                    );
                    return Err(ApiError::conflict(res, name, &why));
                }
                Ok(delete_in(txn, &k, dry_run).expect("object exists"))
            })
            .map(|o| present(res, &o))
    }

    /// DELETE on a collection: deletes every matching object and returns them as a list.
    pub fn delete_collection(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        filter: &Filter,
        dry_run: bool,
    ) -> Value {
        self.store.transact(|txn| {
            let keys: Vec<Key> = txn
                .list(&res.group, &res.plural, namespace)
                .filter(|(_, o)| filter.matches(o))
                .map(|(k, _)| k.clone())
                .collect();
            let items: Vec<Value> = keys
                .iter()
                .filter_map(|k| delete_in(txn, k, dry_run))
                .map(|o| present(res, &o))
                .collect();
            json!({
                "kind": res.list_kind(),
                "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": txn.resource_version().to_string()},
                "items": items,
            })
        })
    }

    /// Namespace controller step: removes everything in a terminating namespace, then the namespace itself.
    pub fn purge_namespace(&self, namespace: &str) {
        self.store.transact(|txn| {
            let keys: Vec<Key> = txn
                .all()
                .filter(|(k, _)| k.namespace == namespace)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &keys {
                txn.remove(k);
            }
            txn.remove(&Key {
                group: String::new(),
                plural: "namespaces".into(),
                namespace: String::new(),
                name: namespace.to_string(),
            });
        });
    }

    /// Garbage collector step: deletes objects whose owners are all gone (background propagation).
    pub fn collect_garbage(&self) {
        self.store.transact(|txn| {
            let uids: std::collections::HashSet<String> =
                txn.all().map(|(_, o)| meta::uid(o).to_string()).collect();
            let orphans: Vec<Key> = txn
                .all()
                .filter(|(_, o)| {
                    let owners = o["metadata"]["ownerReferences"].as_array();
                    owners.is_some_and(|refs| {
                        !refs.is_empty()
                            && refs
                                .iter()
                                .all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()))
                    }) && !meta::is_deleting(o)
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in &orphans {
                delete_in(txn, k, false);
            }
        });
    }

    /// The autoscaling/v1 Scale view of a workload.
    pub fn scale_of(res: &ResourceInfo, object: &Value) -> Value {
        let selector = object["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let metadata = &object["metadata"];
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": metadata["name"],
                "namespace": if res.namespaced { metadata["namespace"].clone() } else { Value::Null },
                "uid": metadata["uid"],
                "resourceVersion": metadata["resourceVersion"],
                "creationTimestamp": metadata["creationTimestamp"],
            },
            "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
            "status": {
                "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
                "selector": selector,
            },
        })
    }
}

fn encode_continue(last: &(String, String)) -> String {
    let raw = json!({"namespace": last.0, "name": last.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    Ok((
        value["namespace"].as_str().ok_or_else(invalid)?.to_string(),
        value["name"].as_str().ok_or_else(invalid)?.to_string(),
    ))
}
