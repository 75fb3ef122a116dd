//! A JSON body extractor whose errors use the API's error format and name the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use crate::domain::taskspec::FieldProblem;

pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                e.status(),
                "body_unreadable",
                format!("cannot read the request body: {e}"),
            )
        })?;
        parse(&bytes).map(Self)
    }
}

/// Fields whose text may span lines (a manifest, a free-text reason, credential files); everywhere else a
/// newline or tab would break names and could forge lines in logs.
const MULTILINE_FIELDS: &[&str] = &["manifest", "reason", "credentials"];

/// Parses a JSON body; a type error or a control character names the field it is about.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    let mut problems = Vec::new();
    control_characters(&value, "", false, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::validation(vec![FieldProblem {
            field,
            message: strip_position(&error.into_inner().to_string()),
        }])
    })
}

/// Every string (and key) holding a control character: NUL and the like anywhere, and line breaks or tabs
/// outside [`MULTILINE_FIELDS`].
fn control_characters(
    value: &Value,
    path: &str,
    multiline: bool,
    problems: &mut Vec<FieldProblem>,
) {
    match value {
        Value::String(text) => {
            let field = if path.is_empty() { "body" } else { path };
            problems.extend(control_character(field, text, multiline));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                control_characters(item, &format!("{path}[{i}]"), multiline, problems);
            }
        }
        Value::Object(entries) => {
            for (key, item) in entries {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                problems.extend(control_character(&field, key, false));
                let multiline = multiline || MULTILINE_FIELDS.contains(&key.as_str());
                control_characters(item, &field, multiline, problems);
            }
        }
        _ => {}
    }
}

pub(super) fn control_character(field: &str, text: &str, multiline: bool) -> Option<FieldProblem> {
    let refused = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
    let c = text.chars().find(|&c| refused(c))?;
    let hint = if multiline {
        "; only line breaks and tabs are allowed here"
    } else {
        ""
    };
    Some(FieldProblem {
        field: field.to_string(),
        message: format!(
            "contains the control character U+{:04X}{hint}",
            u32::from(c)
        ),
    })
}

/// serde_json appends " at line 1 column 42"; the field name is more useful than the position.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(body: &str) -> Vec<String> {
        match parse::<Value>(body.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(error) => error
                .details
                .iter()
                .map(|d| format!("{}: {}", d.field, d.message))
                .collect(),
        }
    }

    #[test]
    fn control_characters_are_refused_by_field() {
        assert_eq!(
            problems(
                r#"{"name": "a\u0000b", "tags": {"k\u001b[31m": "v"}, "list": ["ok", "x\ny"]}"#
            ),
            [
                "list[1]: contains the control character U+000A",
                "name: contains the control character U+0000",
                "tags.k\u{1b}[31m: contains the control character U+001B",
            ]
        );
        assert_eq!(
            problems(r#"{"manifest": "a: 1\n\tb: 2\r\n", "reason": "two\nlines"}"#),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(r#"{"manifest": "a\u0000"}"#),
            [
                "manifest: contains the control character U+0000; only line breaks and tabs are allowed here"
            ]
        );
    }
}
