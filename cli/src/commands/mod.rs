//! Each command: one or a few API calls, then what is printed. Waiting polls the API until a condition holds.

mod access;
mod demos;
mod fleet;
mod tasks;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::{Map, Value, json};

use crate::{CliError, Client};

pub use access::{login, tokens, users};
pub use demos::demos;
pub use fleet::{clouds, clusters, regions, templates};
pub use tasks::tasks;

/// How often `--wait`, `--watch` and `--follow` look again.
const POLL: Duration = Duration::from_millis(500);

/// The id of the object in the list at `path` whose id, or the text at `name_pointer`, is `wanted`.
async fn find(
    client: &Client,
    path: &str,
    what: &str,
    wanted: &str,
    name_pointer: &str,
) -> Result<String, CliError> {
    let list = client.get(path).await?;
    list.as_array()
        .into_iter()
        .flatten()
        .find(|item| item["id"] == wanted || item.pointer(name_pointer) == Some(&json!(wanted)))
        .map(|item| text(item, "/id"))
        .ok_or_else(|| CliError::NotFound(format!("no {what} named {wanted:?}")))
}

/// An id placed into a URL path: ids are UUIDs, so anything else is refused before it reaches the API.
fn path_part(id: &str, what: &str) -> Result<String, CliError> {
    uuid::Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| CliError::Usage(format!("{id:?} is not a {what} id (a UUID)")))
}

/// A file's text, or standard input's for `-`.
fn read_input(file: &Path) -> Result<String, CliError> {
    let read = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(file)
    };
    read.map_err(|error| CliError::Usage(format!("cannot read {}: {error}", file.display())))
}

/// A secret read from standard input: one line, without its line break.
fn read_secret_stdin(what: &str) -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|error| CliError::Usage(format!("cannot read the {what}: {error}")))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(CliError::Usage(format!(
            "the {what} is empty (pipe it into standard input)"
        )));
    }
    Ok(secret)
}

/// `KEY=value` pairs (from a repeated `flag`) as a JSON object.
fn key_values(pairs: &[String], flag: &str) -> Result<Map<String, Value>, CliError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), json!(value))),
            _ => Err(CliError::Usage(format!(
                "--{flag} {pair:?} is not KEY=VALUE"
            ))),
        })
        .collect()
}

/// The API's spelling of a value the command line took as an enum (the same words).
fn api_word(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .expect("no variant is skipped")
        .get_name()
        .to_owned()
}

/// Text placed into a URL path segment or query value, percent-encoded so that it stays one.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}
