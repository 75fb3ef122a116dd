//! The REST API over HTTP, with the API's errors turned into [`CliError`]s that keep its code, message and
//! field details.

use reqwest::Method;
use serde_json::Value;

use crate::CliError;

pub struct Client {
    http: reqwest::Client,
    /// `<url>/api/v1`
    base: String,
    token: String,
}

impl Client {
    /// `url` is the control plane's address (`http://host:port`), with or without `/api/v1`.
    pub fn new(url: &str, token: &str) -> Result<Self, CliError> {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "{url:?} is not an http:// or https:// URL"
            )));
        }
        let base = if url.ends_with("/api/v1") {
            url.to_owned()
        } else {
            format!("{url}/api/v1")
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("edgefleet-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::Failed(format!("cannot set up HTTP: {error}")))?;
        Ok(Self {
            http,
            base,
            token: token.to_owned(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.request(Method::DELETE, path, None).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| self.unreachable(error))?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(api_error(status, &value))
    }

    /// Reads the server-sent event stream at `path`, calling `on_event(name, data)` for each event, until the
    /// server ends it or `on_event` fails.
    pub async fn events(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Err(api_error(status, &value));
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.unreachable(error))?
        {
            pending.extend_from_slice(&chunk);
            // An event ends at a blank line; the rest waits for the next chunk.
            while let Some(end) = pending.windows(2).position(|pair| pair == b"\n\n") {
                let block: Vec<u8> = pending.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let mut event = "message";
                let mut data: Vec<&str> = Vec::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim_start();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push(text.strip_prefix(' ').unwrap_or(text));
                    }
                }
                if !data.is_empty() {
                    on_event(event, &data.join("\n"))?;
                }
            }
        }
        Ok(())
    }

    fn unreachable(&self, error: reqwest::Error) -> CliError {
        CliError::Unreachable {
            url: self.base.clone(),
            reason: error.to_string(),
        }
    }
}

/// The API's error body (`{"error": {"code", "message", "details"}}`) as a [`CliError`].
fn api_error(status: reqwest::StatusCode, value: &Value) -> CliError {
    let error = &value["error"];
    CliError::Api {
        status: status.as_u16(),
        code: error["code"].as_str().unwrap_or("unknown").to_owned(),
        message: error["message"]
            .as_str()
            .map_or_else(|| format!("{status}"), str::to_owned),
        details: error["details"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|detail| {
                (
                    detail["field"].as_str().unwrap_or_default().to_owned(),
                    detail["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    }
}
