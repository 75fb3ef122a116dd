//! Bytes on the agent stream, both ways, and the signed parts inside them: the agent's task verification and
//! key-set update, and its reading of the pinned keys it stored. A forged task must never open.
#![no_main]

use std::sync::OnceLock;

use agent_protocol::control_message::Msg as Down;
use agent_protocol::signing::{PinnedKeys, SigningKey, sign_key_set};
use agent_protocol::{AgentMessage, ControlMessage, SignedTaskKeySet, TaskBody};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn pinned() -> &'static PinnedKeys {
    static KEYS: OnceLock<PinnedKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = SigningKey::from_pem(&SigningKey::generate_pem()).expect("a generated key loads");
        PinnedKeys::from_bootstrap(Some(&sign_key_set(&[&key]))).expect("a self-signed set pins")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = AgentMessage::decode(data);
    let _ = TaskBody::decode(data);
    if let Ok(ControlMessage {
        msg: Some(Down::Task(assignment)),
    }) = ControlMessage::decode(data)
    {
        // The fuzzer does not hold the pinned private key, so nothing it makes may verify.
        let opened = pinned().open(&assignment, "cluster");
        assert!(opened.is_err(), "a forged task opened: {assignment:?}");
    }
    if let Ok(set) = SignedTaskKeySet::decode(data) {
        assert!(
            pinned().update(Some(&set)).is_err(),
            "a forged key set was accepted"
        );
        let _ = PinnedKeys::from_bootstrap(Some(&set));
    }
    if let Ok(keys) = PinnedKeys::from_text(&String::from_utf8_lossy(data)) {
        assert_eq!(PinnedKeys::from_text(&keys.to_text()).as_ref(), Ok(&keys));
    }
});
