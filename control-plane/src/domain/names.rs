//! The rules names follow, shared by the API's validation and the configuration's.

/// A console username: 1-64 letters, digits, `.`, `_` or `-`.
pub fn is_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub const DNS_LABEL_RULE: &str =
    "must be 1-63 characters of lowercase letters, digits and '-', not starting or ending with '-'";

/// A name that becomes part of Kubernetes object names and host names (RFC 1123 label).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
