//! Signed tasks: the control plane signs every task body with Ed25519 when it creates the task, before the task
//! reaches PostgreSQL; the agent runs a body only when a key it pinned at bootstrap signed it and the body names its
//! cluster and the assigned task. A compromised database can then hold up or replay tasks, but not make an agent
//! apply anything the control plane did not sign (docs/security.md#signed-tasks).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

use crate::{SignedTaskKeySet, TaskAssignment, TaskBody, TaskKeySet, TaskSignature, task_body};

// Each kind of signed message has its own prefix, so a signature over one can never pass for the other.
const TASK_CONTEXT: &[u8] = b"edgefleet task body v1\0";
const KEY_SET_CONTEXT: &[u8] = b"edgefleet task key set v1\0";
const PUBLIC_KEY_LEN: usize = 32;
const PINNED_KEY_PREFIX: &str = "ed25519 ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error(
        "the task carries no signature (it was not created by a control plane that signs tasks)"
    )]
    Unsigned,
    #[error(
        "the task is signed with key {key_id}, which this agent does not trust (it trusts {trusted})"
    )]
    UnknownKey { key_id: String, trusted: String },
    #[error(
        "the signature by key {key_id} does not match the task body: the task was altered after it was signed"
    )]
    BadSignature { key_id: String },
    #[error("the signed task body cannot be decoded: {0}")]
    Undecodable(String),
    #[error("the signed task is for cluster {signed}, not this agent's cluster {own}")]
    WrongCluster { signed: String, own: String },
    #[error("the signed body belongs to task {signed}, not to the assigned task {assigned}")]
    WrongTask { signed: String, assigned: String },
    #[error("the signed task body has no spec this agent understands")]
    NoSpec,
    #[error("the task key set is missing or empty")]
    EmptyKeySet,
    #[error("the task key set holds a key that is not a 32-byte Ed25519 public key")]
    MalformedKey,
    #[error("no key this agent trusts signed the new task key set (it trusts {trusted})")]
    KeySetNotTrusted { trusted: String },
    #[error("the pinned task keys, line {line}: {reason}")]
    BadPinnedKeys { line: usize, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM-encoded PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`): {0}")]
    Pem(String),
    #[error("not an Ed25519 private key: {0}")]
    NotEd25519(String),
}

/// The identifier a signature names its key by: derived from the public key, so it cannot disagree with it.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    format!("ed25519:{}", hex::encode(&digest.as_ref()[..8]))
}

/// A private key the control plane signs with.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key as PKCS#8 PEM, the format `from_pem` reads (and `openssl genpkey -algorithm ed25519` writes).
    pub fn generate_pem() -> String {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .expect("the system random generator works");
        let encoded = STANDARD.encode(pkcs8.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|error| KeyError::Pem(error.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|error| KeyError::NotEd25519(error.to_string()))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Encodes the body and signs exactly those bytes; both go into the task's row and, unchanged, to the agent.
    pub fn sign_task(&self, body: &TaskBody) -> (Vec<u8>, TaskSignature) {
        let bytes = body.encode_to_vec();
        let signature = self.sign(TASK_CONTEXT, &bytes);
        (bytes, signature)
    }

    fn sign(&self, context: &[u8], message: &[u8]) -> TaskSignature {
        TaskSignature {
            key_id: self.id.clone(),
            signature: self
                .pair
                .sign(&[context, message].concat())
                .as_ref()
                .to_vec(),
        }
    }
}

/// The key set to hand agents: every key's public half, signed by every key, so agents pinning any of them (the
/// current key, or a previous one during a rotation) accept the set.
pub fn sign_key_set(keys: &[&SigningKey]) -> SignedTaskKeySet {
    let key_set = TaskKeySet {
        ed25519_public_keys: keys.iter().map(|key| key.public_key().to_vec()).collect(),
    }
    .encode_to_vec();
    SignedTaskKeySet {
        signatures: keys
            .iter()
            .map(|key| key.sign(KEY_SET_CONTEXT, &key_set))
            .collect(),
        key_set,
    }
}

/// The task-signing public keys an agent trusts. Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct PinnedKeys {
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for PinnedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}

impl PinnedKeys {
    fn new(keys: Vec<Vec<u8>>) -> Result<Self, SignatureError> {
        if keys.is_empty() {
            return Err(SignatureError::EmptyKeySet);
        }
        if keys.iter().any(|key| key.len() != PUBLIC_KEY_LEN) {
            return Err(SignatureError::MalformedKey);
        }
        Ok(Self { keys })
    }

    /// The set received at bootstrap. Trust comes from the bootstrap itself (a one-time token over TLS to the
    /// pinned CA); the set must still be signed by one of its own keys, so a garbled set is never pinned.
    pub fn from_bootstrap(set: Option<&SignedTaskKeySet>) -> Result<Self, SignatureError> {
        let set = set.ok_or(SignatureError::EmptyKeySet)?;
        let candidate = Self::decode(set)?;
        candidate.accept_key_set(set, &candidate)
    }

    /// The set received at renewal replaces this one only when a key of this set signed it.
    pub fn update(&self, set: Option<&SignedTaskKeySet>) -> Result<Self, SignatureError> {
        let set = set.ok_or(SignatureError::EmptyKeySet)?;
        let candidate = Self::decode(set)?;
        self.accept_key_set(set, &candidate)
    }

    fn decode(set: &SignedTaskKeySet) -> Result<Self, SignatureError> {
        let decoded =
            TaskKeySet::decode(set.key_set.as_slice()).map_err(|_| SignatureError::MalformedKey)?;
        Self::new(decoded.ed25519_public_keys)
    }

    fn accept_key_set(
        &self,
        set: &SignedTaskKeySet,
        candidate: &Self,
    ) -> Result<Self, SignatureError> {
        let trusted = set.signatures.iter().any(|signature| {
            self.verify(KEY_SET_CONTEXT, &set.key_set, signature)
                .is_ok()
        });
        if trusted {
            Ok(candidate.clone())
        } else {
            Err(SignatureError::KeySetNotTrusted {
                trusted: self.ids().join(", "),
            })
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|key| key_id(key)).collect()
    }

    fn verify(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &TaskSignature,
    ) -> Result<(), SignatureError> {
        let key = self
            .keys
            .iter()
            .find(|key| key_id(key) == signature.key_id)
            .ok_or_else(|| SignatureError::UnknownKey {
                key_id: signature.key_id.clone(),
                trusted: self.ids().join(", "),
            })?;
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&[context, message].concat(), &signature.signature)
            .map_err(|_| SignatureError::BadSignature {
                key_id: signature.key_id.clone(),
            })
    }

    /// Checks the assignment's signature before anything of its body is decoded, then that the body names this
    /// agent's cluster and the assigned task. Returns what to run.
    pub fn open(
        &self,
        assignment: &TaskAssignment,
        own_cluster_id: &str,
    ) -> Result<task_body::Spec, SignatureError> {
        let signature = assignment
            .signature
            .as_ref()
            .ok_or(SignatureError::Unsigned)?;
        self.verify(TASK_CONTEXT, &assignment.body, signature)?;
        let body = TaskBody::decode(assignment.body.as_slice())
            .map_err(|error| SignatureError::Undecodable(error.to_string()))?;
        if body.cluster_id != own_cluster_id {
            return Err(SignatureError::WrongCluster {
                signed: body.cluster_id,
                own: own_cluster_id.to_owned(),
            });
        }
        if body.task_id != assignment.task_id {
            return Err(SignatureError::WrongTask {
                signed: body.task_id,
                assigned: assignment.task_id.clone(),
            });
        }
        body.spec.ok_or(SignatureError::NoSpec)
    }

    /// One `ed25519 <base64>` line per key: how the agent stores them beside its certificate.
    pub fn to_text(&self) -> String {
        self.keys
            .iter()
            .map(|key| format!("{PINNED_KEY_PREFIX}{}\n", STANDARD.encode(key)))
            .collect()
    }

    pub fn from_text(text: &str) -> Result<Self, SignatureError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: &str| SignatureError::BadPinnedKeys {
                line: index + 1,
                reason: reason.to_owned(),
            };
            let encoded = line
                .strip_prefix(PINNED_KEY_PREFIX)
                .ok_or_else(|| bad("does not start with `ed25519 `"))?;
            let key = STANDARD
                .decode(encoded)
                .map_err(|_| bad("the key is not base64"))?;
            if key.len() != PUBLIC_KEY_LEN {
                return Err(bad("the key is not 32 bytes"));
            }
            keys.push(key);
        }
        Self::new(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApplySpec, DeleteSpec};

    fn key() -> SigningKey {
        SigningKey::from_pem(&SigningKey::generate_pem()).unwrap()
    }

    fn body(cluster: &str, task: &str, manifest: &str) -> TaskBody {
        TaskBody {
            cluster_id: cluster.into(),
            task_id: task.into(),
            signed_at_unix: 1,
            spec: Some(task_body::Spec::Apply(ApplySpec {
                manifest_yaml: manifest.into(),
                ..Default::default()
            })),
        }
    }

    fn assignment(task: &str, (body, signature): (Vec<u8>, TaskSignature)) -> TaskAssignment {
        TaskAssignment {
            task_id: task.into(),
            lease_id: "lease".into(),
            body,
            signature: Some(signature),
            ..Default::default()
        }
    }

    fn pinned(keys: &[&SigningKey]) -> PinnedKeys {
        PinnedKeys::from_bootstrap(Some(&sign_key_set(keys))).unwrap()
    }

    #[test]
    fn a_signed_task_opens_for_its_cluster_and_task() {
        let signer = key();
        let sealed = signer.sign_task(&body("c1", "t1", "kind: ConfigMap"));
        let spec = pinned(&[&signer])
            .open(&assignment("t1", sealed), "c1")
            .unwrap();
        let task_body::Spec::Apply(apply) = spec else {
            panic!("not an apply spec")
        };
        assert_eq!(apply.manifest_yaml, "kind: ConfigMap");
    }

    #[test]
    fn any_changed_byte_of_the_body_is_refused() {
        let signer = key();
        let keys = pinned(&[&signer]);
        let (bytes, signature) = signer.sign_task(&body("c1", "t1", "kind: ConfigMap"));
        for index in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[index] ^= 0x01;
            let error = keys
                .open(&assignment("t1", (tampered, signature.clone())), "c1")
                .unwrap_err();
            assert_eq!(
                error,
                SignatureError::BadSignature {
                    key_id: signer.id().into()
                }
            );
        }
    }

    #[test]
    fn a_body_signed_by_another_key_is_refused_by_name() {
        let trusted = key();
        let attacker = key();
        let sealed = attacker.sign_task(&body("c1", "t1", "kind: ClusterRoleBinding"));
        let error = pinned(&[&trusted])
            .open(&assignment("t1", sealed), "c1")
            .unwrap_err();
        assert_eq!(
            error,
            SignatureError::UnknownKey {
                key_id: attacker.id().into(),
                trusted: trusted.id().into()
            }
        );
        // Claiming the trusted key's id does not help: the signature is checked with the pinned key.
        let (bytes, mut signature) =
            attacker.sign_task(&body("c1", "t1", "kind: ClusterRoleBinding"));
        signature.key_id = trusted.id().into();
        let error = pinned(&[&trusted])
            .open(&assignment("t1", (bytes, signature)), "c1")
            .unwrap_err();
        assert!(
            matches!(error, SignatureError::BadSignature { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_signed_body_moved_to_another_cluster_or_task_is_refused() {
        let signer = key();
        let keys = pinned(&[&signer]);
        let sealed = signer.sign_task(&body("c1", "t1", "x"));
        assert_eq!(
            keys.open(&assignment("t1", sealed.clone()), "c2")
                .unwrap_err(),
            SignatureError::WrongCluster {
                signed: "c1".into(),
                own: "c2".into()
            }
        );
        assert_eq!(
            keys.open(&assignment("t2", sealed), "c1").unwrap_err(),
            SignatureError::WrongTask {
                signed: "t1".into(),
                assigned: "t2".into()
            }
        );
    }

    #[test]
    fn unsigned_and_specless_tasks_are_refused() {
        let signer = key();
        let keys = pinned(&[&signer]);
        let unsigned = TaskAssignment {
            task_id: "t1".into(),
            ..Default::default()
        };
        assert_eq!(
            keys.open(&unsigned, "c1").unwrap_err(),
            SignatureError::Unsigned
        );
        let mut empty = body("c1", "t1", "");
        empty.spec = None;
        let sealed = signer.sign_task(&empty);
        assert_eq!(
            keys.open(&assignment("t1", sealed), "c1").unwrap_err(),
            SignatureError::NoSpec
        );
    }

    #[test]
    fn a_key_set_signature_is_no_task_signature() {
        let signer = key();
        let keys = pinned(&[&signer]);
        let set = sign_key_set(&[&signer]);
        // Present the signed key set's bytes as a task body: the contexts differ, so it does not verify.
        let forged = assignment("t1", (set.key_set.clone(), set.signatures[0].clone()));
        assert!(matches!(
            keys.open(&forged, "c1").unwrap_err(),
            SignatureError::BadSignature { .. }
        ));
        let delete = TaskBody {
            spec: Some(task_body::Spec::Delete(DeleteSpec::default())),
            ..body("c1", "t1", "")
        };
        assert!(
            keys.open(&assignment("t1", signer.sign_task(&delete)), "c1")
                .is_ok()
        );
    }

    #[test]
    fn rotation_needs_a_set_signed_by_a_pinned_key() {
        let old = key();
        let new = key();
        let pinned_old = pinned(&[&old]);
        // During the rotation the control plane holds both keys and signs the set with both.
        let rotated = pinned_old
            .update(Some(&sign_key_set(&[&new, &old])))
            .unwrap();
        assert_eq!(
            rotated.ids(),
            vec![new.id().to_owned(), old.id().to_owned()]
        );
        // Afterwards the old key is dropped; the agent accepts because it now pins the new one.
        let finished = rotated.update(Some(&sign_key_set(&[&new]))).unwrap();
        assert_eq!(finished.ids(), vec![new.id().to_owned()]);
        // A set signed only by a key the agent never pinned is refused, and an agent that missed the rotation
        // window needs a new bootstrap.
        let attacker = key();
        assert_eq!(
            pinned_old
                .update(Some(&sign_key_set(&[&attacker])))
                .unwrap_err(),
            SignatureError::KeySetNotTrusted {
                trusted: old.id().into()
            }
        );
        assert!(pinned_old.update(Some(&sign_key_set(&[&new]))).is_err());
        assert_eq!(
            pinned_old.update(None).unwrap_err(),
            SignatureError::EmptyKeySet
        );
    }

    #[test]
    fn a_bootstrap_set_must_be_non_empty_and_signed_by_its_own_keys() {
        let signer = key();
        let mut set = sign_key_set(&[&signer]);
        set.signatures.clear();
        assert!(matches!(
            PinnedKeys::from_bootstrap(Some(&set)).unwrap_err(),
            SignatureError::KeySetNotTrusted { .. }
        ));
        let empty = SignedTaskKeySet {
            key_set: TaskKeySet::default().encode_to_vec(),
            signatures: Vec::new(),
        };
        assert_eq!(
            PinnedKeys::from_bootstrap(Some(&empty)).unwrap_err(),
            SignatureError::EmptyKeySet
        );
    }

    #[test]
    fn pinned_keys_round_trip_through_text_and_name_bad_lines() {
        let keys = pinned(&[&key(), &key()]);
        assert_eq!(PinnedKeys::from_text(&keys.to_text()).unwrap(), keys);
        let error = PinnedKeys::from_text("ed25519 AAAA\n").unwrap_err();
        assert_eq!(
            error,
            SignatureError::BadPinnedKeys {
                line: 1,
                reason: "the key is not 32 bytes".into()
            }
        );
        assert_eq!(
            PinnedKeys::from_text("\n").unwrap_err(),
            SignatureError::EmptyKeySet
        );
    }

    #[test]
    fn keys_load_from_openssl_style_pem_and_refuse_other_keys() {
        let pem = SigningKey::generate_pem();
        let key = SigningKey::from_pem(&pem).unwrap();
        assert!(key.id().starts_with("ed25519:"));
        assert_eq!(key.id().len(), "ed25519:".len() + 16);
        assert!(matches!(
            SigningKey::from_pem("not a key").unwrap_err(),
            KeyError::Pem(_)
        ));
        // An openssl-generated PKCS#8 v1 Ed25519 key (no public key inside).
        let openssl = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA37Q4GADXldMfNeYbSWA8f4/CIbvdlQCRdptrtZXNc0\n-----END PRIVATE KEY-----\n";
        SigningKey::from_pem(openssl).unwrap();
        assert!(format!("{key:?}").starts_with("SigningKey { id: \"ed25519:"));
    }
}
