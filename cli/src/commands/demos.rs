//! One-click demos: deploy, change (update, rollback, stop, start, retry), watch the steps, read the logs, delete.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::{POLL, api_word, encode, find, key_values, text};
use crate::output::{self, Column, Format};
use crate::{CliError, Client, DemoAction, LogLevel};

const DEMO_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("STATUS", "/status"),
    ("STEP", "/current_step"),
    ("VERSION", "/version"),
    ("URL", "/url"),
    ("ERROR", "/error"),
];
const STEP_COLUMNS: &[Column] = &[
    ("STEP", "/name"),
    ("STATE", "/state"),
    ("MESSAGE", "/message"),
];
const VERSION_COLUMNS: &[Column] = &[
    ("VERSION", "/version"),
    ("IMAGE", "/image"),
    ("REPLICAS", "/config/replicas"),
    ("REASON", "/reason"),
    ("BY", "/created_by"),
    ("CREATED", "/created_at"),
];

async fn demo_id(client: &Client, name: &str) -> Result<String, CliError> {
    find(client, "/demos", "demo", name, "/name").await
}

pub async fn demos(client: &Client, format: Format, action: DemoAction) -> Result<(), CliError> {
    match action {
        DemoAction::List => {
            output::print(format, &client.get("/demos").await?, DEMO_COLUMNS);
            Ok(())
        }
        DemoAction::Deploy {
            name,
            template,
            region,
            image,
            env,
            replicas,
            wait,
        } => {
            let region = if region == "auto" {
                region
            } else {
                find(client, "/regions", "region", &region, "/code").await?
            };
            let mut body = json!({"name": name, "template": template, "region": region,
                                  "env": key_values(&env, "env")?, "replicas": replicas});
            if let Some(image) = image {
                body["image"] = json!(image);
            }
            let demo = client.post("/demos", &body).await?;
            follow(client, format, &demo, wait).await
        }
        DemoAction::Status { name, watch } => {
            let id = demo_id(client, &name).await?;
            if watch {
                watch_demo(client, format, &id, |_| false).await
            } else {
                let demo = client.get(&format!("/demos/{id}")).await?;
                print_demo(format, &demo);
                Ok(())
            }
        }
        DemoAction::Update {
            name,
            image,
            env,
            replicas,
            wait,
        } => {
            let mut change = Map::new();
            if let Some(image) = image {
                change.insert("image".into(), json!(image));
            }
            if !env.is_empty() {
                change.insert("env".into(), Value::Object(key_values(&env, "env")?));
            }
            if let Some(replicas) = replicas {
                change.insert("replicas".into(), json!(replicas));
            }
            if change.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --image, --env or --replicas".into(),
                ));
            }
            change_demo(client, format, &name, "update", Value::Object(change), wait).await
        }
        DemoAction::Rollback {
            name,
            to_version,
            wait,
        } => {
            let body = json!({"version": to_version});
            change_demo(client, format, &name, "rollback", body, wait).await
        }
        DemoAction::Stop { name, wait } => {
            change_demo(client, format, &name, "stop", json!({}), wait).await
        }
        DemoAction::Start { name, wait } => {
            change_demo(client, format, &name, "start", json!({}), wait).await
        }
        DemoAction::Retry { name, wait } => {
            change_demo(client, format, &name, "retry", json!({}), wait).await
        }
        DemoAction::Versions { name } => {
            let id = demo_id(client, &name).await?;
            let versions = client.get(&format!("/demos/{id}/versions")).await?;
            output::print(format, &versions, VERSION_COLUMNS);
            Ok(())
        }
        DemoAction::Logs {
            name,
            follow,
            since,
            level,
            grep,
            pod,
        } => {
            let id = demo_id(client, &name).await?;
            demo_logs(
                client,
                format,
                &id,
                follow,
                LogFilter {
                    since,
                    level,
                    grep,
                    pod,
                },
            )
            .await
        }
        DemoAction::Delete { name, wait } => {
            let id = demo_id(client, &name).await?;
            let demo = client.delete(&format!("/demos/{id}")).await?;
            if wait {
                watch_demo(client, format, &id, |demo| demo["deleted_at"].is_string()).await
            } else {
                print_demo(format, &demo);
                Ok(())
            }
        }
    }
}

/// `POST /demos/{id}/<action>`: a new version rolled out by the steps (or the failed step resumed).
async fn change_demo(
    client: &Client,
    format: Format,
    name: &str,
    action: &str,
    body: Value,
    wait: bool,
) -> Result<(), CliError> {
    let id = demo_id(client, name).await?;
    let demo = client.post(&format!("/demos/{id}/{action}"), &body).await?;
    follow(client, format, &demo, wait).await
}

/// Prints the demo as the API answered, or with `wait` follows its steps to the end.
async fn follow(client: &Client, format: Format, demo: &Value, wait: bool) -> Result<(), CliError> {
    if wait {
        watch_demo(client, format, &text(demo, "/id"), |_| false).await
    } else {
        print_demo(format, demo);
        Ok(())
    }
}

struct LogFilter {
    since: Option<Duration>,
    level: Option<LogLevel>,
    grep: Option<String>,
    pod: Option<String>,
}

impl LogFilter {
    fn query(&self) -> String {
        let mut query = Vec::new();
        if let Some(since) = self.since {
            let from = SystemTime::now()
                .checked_sub(since)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            query.push(format!(
                "since={}",
                encode(&humantime::format_rfc3339(from).to_string())
            ));
        }
        if let Some(level) = self.level {
            query.push(format!("level={}", api_word(level)));
        }
        if let Some(grep) = &self.grep {
            query.push(format!("q={}", encode(grep)));
        }
        if let Some(pod) = &self.pod {
            query.push(format!("pod={}", encode(pod)));
        }
        query.join("&")
    }
}

/// Prints the demo's stored lines page by page; with `follow`, then keeps the API's live tail open and prints
/// each new line as it is stored.
async fn demo_logs(
    client: &Client,
    format: Format,
    id: &str,
    follow: bool,
    filter: LogFilter,
) -> Result<(), CliError> {
    let query = filter.query();
    if follow {
        // The live tail sends the stored lines first, then the new ones: one stream covers both.
        return client
            .events(
                &format!("/demos/{id}/logs?follow=true&{query}"),
                |event, data| match event {
                    "line" => {
                        let line: Value = serde_json::from_str(data).map_err(|error| {
                            CliError::Failed(format!(
                                "the log stream sent an unreadable line: {error}"
                            ))
                        })?;
                        print_log_line(format, &line);
                        Ok(())
                    }
                    "error" => Err(CliError::Failed(format!("the log stream ended: {data}"))),
                    _ => Ok(()),
                },
            )
            .await;
    }
    let mut cursor: Option<String> = None;
    loop {
        let page_query = match &cursor {
            Some(cursor) => format!("{query}&cursor={}", encode(cursor)),
            None => query.clone(),
        };
        let page = client
            .get(&format!("/demos/{id}/logs?limit=1000&{page_query}"))
            .await?;
        for line in page["lines"].as_array().into_iter().flatten() {
            print_log_line(format, line);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
}

fn print_log_line(format: Format, line: &Value) {
    match format {
        Format::Table => println!(
            "{} {}/{} {:<5} {}",
            text(line, "/time"),
            text(line, "/pod").escape_debug(),
            text(line, "/container").escape_debug(),
            text(line, "/level"),
            text(line, "/message").escape_debug()
        ),
        _ => println!("{line}"),
    }
}

fn print_demo(format: Format, demo: &Value) {
    output::print(format, demo, DEMO_COLUMNS);
    if format == Format::Table {
        print!("\n{}", output::table(&demo["steps"], STEP_COLUMNS));
    }
}

/// Prints each step as it changes until every step succeeded, one failed (exit 1), or `done` holds.
async fn watch_demo(
    client: &Client,
    format: Format,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<(), CliError> {
    let mut seen: Vec<(String, String, String)> = Vec::new();
    loop {
        let demo = client.get(&format!("/demos/{id}")).await?;
        let steps = demo["steps"].as_array().cloned().unwrap_or_default();
        for step in &steps {
            let key = (
                format!("v{} {}", text(step, "/version"), text(step, "/name")),
                text(step, "/state"),
                text(step, "/message"),
            );
            if !seen.contains(&key) {
                if format == Format::Table {
                    eprintln!("{}: {} {}", key.0, key.1, key.2.escape_debug());
                }
                seen.push(key);
            }
        }
        let failed = steps.iter().any(|step| step["state"] == "failed");
        let finished = !steps.is_empty() && steps.iter().all(|step| step["state"] == "succeeded");
        if failed || finished || done(&demo) {
            print_demo(format, &demo);
            return match demo["error"].as_str() {
                Some(error) if failed => Err(CliError::Failed(format!(
                    "demo {}: {error}",
                    text(&demo, "/name")
                ))),
                _ => Ok(()),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}
