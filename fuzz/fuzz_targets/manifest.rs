//! A task's manifest as both ends read it: the control plane's validation before queueing (with the apply policy
//! for both roles), and the agent's parse, apply order and policy check. Beyond not crashing: apply order keeps
//! every document, and a document the agent parsed keeps its position.
#![no_main]

use agent_protocol::ApplyTier;
use agent_protocol::policy::ApplyPolicy;
use control_plane::domain::taskspec::{ApplyPayload, Tier};
use libfuzzer_sys::fuzz_target;
use node_agent::apply::manifest;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let policy = ApplyPolicy::default();
    for tier in [Tier::Operator, Tier::Admin] {
        let payload = ApplyPayload {
            manifest: text.to_string(),
            wait_timeout_seconds: 0,
            force_conflicts: false,
            prune: None,
            tier,
        };
        for problem in payload.validate(&policy) {
            assert!(problem.field.starts_with("manifest"), "{problem:?}");
        }
    }
    if let Ok(documents) = manifest::parse(&text) {
        let count = documents.len();
        let mut positions: Vec<usize> = documents.iter().map(|document| document.index).collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "{positions:?}"
        );
        let ordered = manifest::apply_order(documents);
        assert_eq!(ordered.len(), count);
        let mut reordered: Vec<usize> = ordered.iter().map(|document| document.index).collect();
        positions.sort_unstable();
        reordered.sort_unstable();
        assert_eq!(positions, reordered);
        for document in &ordered {
            let _ = document.reference().to_string();
            if let Ok(object) = serde_json::to_value(&document.object) {
                for tier in [ApplyTier::Operator, ApplyTier::Admin] {
                    let _ = policy
                        .check(&object, tier)
                        .map_err(|violation| violation.to_string());
                }
            }
        }
    }
});
