//! Query-string parameters, refused like JSON bodies with a 422 that names the parameter: a value of the wrong
//! type (`limit=many`), or a control character: a NUL byte would otherwise reach PostgreSQL, which cannot store
//! it in text, and come back as a server error.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::json::control_character;
use crate::domain::taskspec::FieldProblem;

/// The query string deserialized into `T`, or a 422 naming each parameter that is wrong.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let raw = parts.uri.query().unwrap_or_default();
        let problems: Vec<_> = url::form_urlencoded::parse(raw.as_bytes())
            .flat_map(|(name, value)| {
                let name_problem = control_character("query parameter name", &name, false);
                let value_problem = control_character(&name, &value, false);
                name_problem.into_iter().chain(value_problem)
            })
            .collect();
        if !problems.is_empty() {
            return Err(ApiError::validation(problems).into_response());
        }
        let parameters =
            serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(raw.as_bytes()));
        serde_path_to_error::deserialize(parameters)
            .map(QueryParams)
            .map_err(|error| {
                let field = match error.path().to_string() {
                    path if path == "." => "query".to_string(),
                    path => path,
                };
                let problem = FieldProblem {
                    field,
                    message: error.into_inner().to_string(),
                };
                ApiError::validation(vec![problem]).into_response()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Filter {
        actor: Option<String>,
        limit: Option<i64>,
    }

    async fn extract(uri: &str) -> Result<QueryParams<Filter>, Response> {
        let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
        QueryParams::<Filter>::from_request_parts(&mut parts, &()).await
    }

    /// The JSON body of the 422 that `uri` is refused with.
    async fn refusal(uri: &str) -> serde_json::Value {
        let refused = extract(uri).await.err().unwrap();
        assert_eq!(
            refused.status(),
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        );
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn a_nul_byte_in_a_parameter_is_a_422_naming_it() {
        let body = refusal("/audit?actor=a%00b").await.to_string();
        assert!(body.contains("\"field\":\"actor\""), "{body}");
        assert!(body.contains("U+0000"), "{body}");
        let accepted = extract("/audit?actor=user%3Aalice&limit=5").await.unwrap();
        assert_eq!(accepted.0.actor.as_deref(), Some("user:alice"));
        assert_eq!(accepted.0.limit, Some(5));
    }

    #[tokio::test]
    async fn a_value_of_the_wrong_type_is_a_422_naming_its_parameter() {
        let body = refusal("/audit?limit=many").await;
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["details"][0]["field"], "limit");
        assert!(
            body["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("invalid digit"),
            "{body}"
        );
    }
}
