//! Which Terraform variables a user may set on a root stack. Each stack's `inputs.yaml` lists them with their
//! rules; everything else (binaries, arguments, paths, the region and the cluster name) comes from the control
//! plane's configuration, so an operator cannot make Terraform run a program of their choosing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ProvisioningConfig;
use crate::domain::taskspec::FieldProblem;

/// The file beside a root stack's `.tf` files that declares its user-settable variables.
pub const INPUTS_FILE: &str = "inputs.yaml";
/// Longest text value a user may give any variable.
const MAX_TEXT_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("no Terraform root stack named {0:?}")]
    Unknown(String),
    #[error(
        "the {0:?} stack runs processes on the control plane's host and is offered only by a development control plane (provisioning.allow_development_stacks)"
    )]
    DevelopmentOnly(String),
    #[error("{path}: {message}")]
    Declaration { path: PathBuf, message: String },
}

/// A root stack's `inputs.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackInputs {
    /// The stack acts on the control plane's own host (the `local` stack), not on a cloud.
    pub development_only: bool,
    pub variables: BTreeMap<String, VariableRule>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum VariableRule {
    String {
        #[serde(default)]
        pattern: Option<Pattern>,
        #[serde(default)]
        one_of: Option<Vec<String>>,
    },
    Integer {
        min: i64,
        max: i64,
    },
    Bool,
    /// A list of strings.
    List {
        #[serde(default)]
        items: TextRule,
        max_items: usize,
    },
    /// A map of strings to strings (tags).
    Map {
        max_items: usize,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRule {
    #[serde(default)]
    pattern: Option<Pattern>,
}

/// A regular expression that must match the whole value.
#[derive(Debug)]
pub struct Pattern(regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if !text.starts_with('^') || !text.ends_with('$') {
            return Err(serde::de::Error::custom(format!(
                "pattern {text:?} must be anchored with ^ and $"
            )));
        }
        regex::Regex::new(&text)
            .map(Pattern)
            .map_err(serde::de::Error::custom)
    }
}

/// The inputs of the stack a cluster may be provisioned with here: it exists, declares its inputs, and is not
/// development-only unless the configuration allows those.
pub fn offered(config: &ProvisioningConfig, stack: &str) -> Result<StackInputs, StackError> {
    let inputs = load(&config.source_dir, stack)?;
    if inputs.development_only && !config.allow_development_stacks {
        return Err(StackError::DevelopmentOnly(stack.to_string()));
    }
    Ok(inputs)
}

fn load(source_dir: &Path, stack: &str) -> Result<StackInputs, StackError> {
    let plain = stack.starts_with(|c: char| c.is_ascii_lowercase())
        && stack
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let dir = source_dir.join("terraform/region-cluster").join(stack);
    if !plain || !dir.is_dir() {
        return Err(StackError::Unknown(stack.to_string()));
    }
    let path = dir.join(INPUTS_FILE);
    let declaration = |message: String| StackError::Declaration {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| declaration(e.to_string()))?;
    serde_yaml::from_str(&text).map_err(|e| declaration(e.to_string()))
}

impl StackInputs {
    /// Every problem with a user's variables, each named `<field>.<variable>`.
    pub fn check(&self, variables: &Map<String, Value>, field: &str) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        for (name, value) in variables {
            let field = format!("{field}.{name}");
            let problem = match self.variables.get(name) {
                None => Some(format!(
                    "not a variable users may set on this stack (settable: {})",
                    self.settable()
                )),
                Some(rule) => rule.check(value).err(),
            };
            if let Some(message) = problem {
                problems.push(FieldProblem { field, message });
            }
        }
        problems
    }

    fn settable(&self) -> String {
        if self.variables.is_empty() {
            return "none".into();
        }
        self.variables
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl VariableRule {
    fn check(&self, value: &Value) -> Result<(), String> {
        match (self, value) {
            (Self::String { pattern, one_of }, Value::String(text)) => {
                check_text(text, pattern.as_ref())?;
                match one_of {
                    Some(allowed) if !allowed.contains(text) => {
                        Err(format!("must be one of {}", allowed.join(", ")))
                    }
                    _ => Ok(()),
                }
            }
            (Self::Integer { min, max }, Value::Number(number)) => match number.as_i64() {
                Some(n) if (*min..=*max).contains(&n) => Ok(()),
                _ => Err(format!("must be a whole number from {min} to {max}")),
            },
            (Self::Bool, Value::Bool(_)) => Ok(()),
            (Self::List { items, max_items }, Value::Array(values)) => {
                if values.len() > *max_items {
                    return Err(format!("at most {max_items} items"));
                }
                for (i, item) in values.iter().enumerate() {
                    let text = item
                        .as_str()
                        .ok_or_else(|| format!("item {i} must be a string"))?;
                    check_text(text, items.pattern.as_ref())
                        .map_err(|e| format!("item {i}: {e}"))?;
                }
                Ok(())
            }
            (Self::Map { max_items }, Value::Object(entries)) => {
                if entries.len() > *max_items {
                    return Err(format!("at most {max_items} entries"));
                }
                for (key, item) in entries {
                    check_text(key, None).map_err(|e| format!("key: {e}"))?;
                    let text = item
                        .as_str()
                        .ok_or_else(|| format!("the value of {key:?} must be a string"))?;
                    check_text(text, None).map_err(|e| format!("the value of {key:?}: {e}"))?;
                }
                Ok(())
            }
            (rule, _) => Err(format!("must be {}", rule.expected())),
        }
    }

    fn expected(&self) -> &'static str {
        match self {
            Self::String { .. } => "a string",
            Self::Integer { .. } => "a whole number",
            Self::Bool => "true or false",
            Self::List { .. } => "a list of strings",
            Self::Map { .. } => "an object of strings",
        }
    }
}

fn check_text(text: &str, pattern: Option<&Pattern>) -> Result<(), String> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("longer than {MAX_TEXT_CHARS} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    match pattern {
        Some(Pattern(regex)) if !regex.is_match(text) => {
            Err(format!("{text:?} does not match {}", regex.as_str()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn repo() -> PathBuf {
        harness::workspace_root()
    }

    fn problems(inputs: &StackInputs, variables: Value) -> Vec<String> {
        inputs
            .check(variables.as_object().unwrap(), "provision.variables")
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn every_stack_declares_inputs_that_its_variables_tf_has() {
        let stacks = std::fs::read_dir(repo().join("terraform/region-cluster")).unwrap();
        let mut seen = 0;
        for entry in stacks {
            let stack = entry.unwrap().file_name().into_string().unwrap();
            let inputs = load(&repo(), &stack).unwrap_or_else(|e| panic!("{e}"));
            let declared = std::fs::read_to_string(
                repo()
                    .join("terraform/region-cluster")
                    .join(&stack)
                    .join("variables.tf"),
            )
            .unwrap();
            for name in inputs.variables.keys() {
                assert!(
                    declared.contains(&format!("variable \"{name}\" {{")),
                    "{stack}/inputs.yaml lists {name}, which variables.tf does not declare"
                );
                assert!(!["region", "cluster_name"].contains(&name.as_str()));
            }
            seen += 1;
        }
        assert!(seen >= 3);
    }

    #[test]
    fn the_local_stack_never_takes_binaries_arguments_or_paths_from_a_user() {
        let inputs = load(&repo(), "local").unwrap();
        assert!(inputs.development_only);
        let refused = problems(
            &inputs,
            json!({"cluster_bin": "/bin/sh", "cluster_args": ["--run-image", "x=/bin/sh"],
                   "kubeconfig_path": "/root/.kube/config", "state_dir": "/etc", "detach": false}),
        );
        assert_eq!(refused.len(), 5, "{refused:?}");
        assert!(
            refused[0]
                .starts_with("provision.variables.cluster_args: not a variable users may set")
        );
        assert!(refused[0].ends_with("(settable: node_count, start_timeout_seconds)"));
        assert!(
            problems(
                &inputs,
                json!({"node_count": 3, "start_timeout_seconds": 30})
            )
            .is_empty()
        );
    }

    #[test]
    fn values_are_checked_against_their_rule() {
        let inputs = load(&repo(), "aws").unwrap();
        assert!(!inputs.development_only);
        assert!(
            problems(
                &inputs,
                json!({"node_count": 3, "capacity_type": "SPOT", "instance_types": ["t3.large", "m5.xlarge"],
                       "availability_zones": ["us-east-1a", "us-east-1b"], "tags": {"team": "ml"},
                       "single_nat_gateway": false, "public_access_cidrs": ["203.0.113.0/24"]})
            )
            .is_empty()
        );
        let refused = problems(
            &inputs,
            json!({"node_count": 1000, "capacity_type": "FREE", "instance_types": ["t3.large", 7],
                   "tags": {"a": "b\u{0}"}, "single_nat_gateway": "yes", "kubernetes_version": "1.31; rm -rf /",
                   "vpc_cidr_block": "x".repeat(300)}),
        );
        assert_eq!(
            refused,
            [
                "provision.variables.capacity_type: must be one of ON_DEMAND, SPOT",
                "provision.variables.instance_types: item 1 must be a string",
                "provision.variables.kubernetes_version: \"1.31; rm -rf /\" does not match ^1\\.[0-9]{2}$",
                "provision.variables.node_count: must be a whole number from 0 to 100",
                "provision.variables.single_nat_gateway: must be true or false",
                "provision.variables.tags: the value of \"a\": contains a control character",
                "provision.variables.vpc_cidr_block: longer than 256 characters",
            ]
        );
    }

    #[test]
    fn unknown_or_odd_stack_names_are_unknown() {
        for stack in ["nope", "../local", "local/", "", "Local"] {
            assert!(
                matches!(load(&repo(), stack), Err(StackError::Unknown(_))),
                "{stack}"
            );
        }
    }
}
