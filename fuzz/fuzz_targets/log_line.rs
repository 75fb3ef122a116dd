//! A container log line as the agent reads it from the kubelet: timestamp split, length bound and level.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_agent::podlogs::line::{MAX_LINE_BYTES, bounded, level, split_timestamp};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let text = match split_timestamp(&line) {
        Some((_, text)) => {
            assert!(line.ends_with(text));
            text
        }
        None => &line,
    };
    let kept = bounded(text);
    if text.len() <= MAX_LINE_BYTES {
        assert_eq!(kept, text);
    } else {
        assert!(kept.len() < text.len() + 64, "the cut grew the line");
        assert!(kept.contains("[truncated "));
    }
    let _ = level(&kept);
});
