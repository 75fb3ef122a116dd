//! An image template's `template.yaml` as the control plane loads it at start: parsed, validated, and every
//! refusal must name the file and a field.
#![no_main]

use std::path::Path;

use control_plane::templates::{TemplateError, parse_template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("images/fuzzed/template.yaml");
    match parse_template(data, path) {
        Ok(spec) => assert!(spec.validate().is_empty()),
        Err(TemplateError::Invalid { path: named, .. }) => assert_eq!(named, path),
        Err(other) => panic!("a parse can only be refused as invalid: {other}"),
    }
});
