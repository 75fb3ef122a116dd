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

/// An environment variable's name: letters, digits and `_`, not starting with a digit.
pub fn is_env_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An environment variable whose name says it holds a secret (`AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`): its value
/// is masked in output and it may only come from a cloud account's sealed credentials.
pub fn is_secret_env_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "KEY", "TOKEN", "PASSWORD", "CREDENTIAL"]
        .iter()
        .any(|s| upper.contains(s))
}
