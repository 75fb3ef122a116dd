//! Tasks: applying a manifest to a cluster, following it to its end, its log and its per-object results.

use serde_json::{Value, json};

use super::{POLL, find, path_part, read_input, text};
use crate::output::{self, Column, Format};
use crate::{CliError, Client, TaskAction};

const TASK_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("KIND", "/kind"),
    ("STATE", "/state"),
    ("ATTEMPTS", "/attempts"),
    ("CREATED", "/created_at"),
    ("ERROR", "/error"),
];

pub async fn tasks(client: &Client, format: Format, action: TaskAction) -> Result<(), CliError> {
    match action {
        TaskAction::Apply {
            file,
            cluster,
            wait,
            force_conflicts,
            idempotency_key,
            reason,
        } => {
            let manifest = read_input(&file)?;
            let cluster_id = find(client, "/clusters", "cluster", &cluster, "/name").await?;
            let mut body =
                json!({"kind": "apply", "manifest": manifest, "force_conflicts": force_conflicts});
            if let Some(key) = idempotency_key {
                body["idempotency_key"] = json!(key);
            }
            if let Some(reason) = reason {
                body["reason"] = json!(reason);
            }
            let task = client
                .post(&format!("/clusters/{cluster_id}/tasks"), &body)
                .await?;
            if !wait {
                output::print(format, &task, TASK_COLUMNS);
                return Ok(());
            }
            let id = text(&task, "/id");
            let finished = wait_task(client, &id).await?;
            output::print(format, &finished, TASK_COLUMNS);
            task_outcome(&finished)
        }
        TaskAction::List { cluster } => {
            let query = match cluster {
                Some(cluster) => {
                    let id = find(client, "/clusters", "cluster", &cluster, "/name").await?;
                    format!("?cluster_id={id}")
                }
                None => String::new(),
            };
            output::print(
                format,
                &client.get(&format!("/tasks{query}")).await?,
                TASK_COLUMNS,
            );
            Ok(())
        }
        TaskAction::Get { id } => {
            let task = client
                .get(&format!("/tasks/{}", path_part(&id, "task")?))
                .await?;
            output::print(format, &task, TASK_COLUMNS);
            if format == Format::Table {
                print!(
                    "\n{}",
                    output::table(
                        &task["objects"],
                        &[
                            ("DOCUMENT", "/document_index"),
                            ("KIND", "/kind"),
                            ("NAMESPACE", "/namespace"),
                            ("NAME", "/name"),
                            ("OUTCOME", "/outcome"),
                            ("MESSAGE", "/message"),
                        ],
                    )
                );
            }
            Ok(())
        }
        TaskAction::Cancel { id } => {
            let task = client
                .post(
                    &format!("/tasks/{}/cancel", path_part(&id, "task")?),
                    &json!({}),
                )
                .await?;
            output::print(format, &task, TASK_COLUMNS);
            Ok(())
        }
        TaskAction::Logs { id, follow } => {
            task_logs(client, format, &path_part(&id, "task")?, follow).await
        }
    }
}

/// Prints the task's lines in order, page by page; with `follow`, until the task finished and nothing is left.
async fn task_logs(
    client: &Client,
    format: Format,
    id: &str,
    follow: bool,
) -> Result<(), CliError> {
    let mut after: Option<i64> = None;
    loop {
        // Read the state first: lines written before it finished are then all in the pages below.
        let finished = is_final(&client.get(&format!("/tasks/{id}")).await?);
        loop {
            let query = after
                .map(|after| format!("?after={after}"))
                .unwrap_or_default();
            let page = client.get(&format!("/tasks/{id}/logs{query}")).await?;
            let lines = page["lines"].as_array().cloned().unwrap_or_default();
            for line in &lines {
                match format {
                    Format::Table => println!(
                        "{} {:<5} {}",
                        text(line, "/time"),
                        text(line, "/level"),
                        text(line, "/message").escape_debug()
                    ),
                    _ => println!("{line}"),
                }
            }
            if let Some(last) = lines.last().and_then(|line| line["ts_nanos"].as_i64()) {
                after = Some(last);
            }
            if page["next_after"].is_null() {
                break;
            }
        }
        if !follow || finished {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn wait_task(client: &Client, id: &str) -> Result<Value, CliError> {
    loop {
        let task = client.get(&format!("/tasks/{id}")).await?;
        if is_final(&task) {
            return Ok(task);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn is_final(task: &Value) -> bool {
    matches!(
        task["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

fn task_outcome(task: &Value) -> Result<(), CliError> {
    match task["state"].as_str() {
        Some("succeeded") => Ok(()),
        state => Err(CliError::Failed(format!(
            "task {} {}: {}",
            text(task, "/id"),
            state.unwrap_or("ended"),
            task["error"].as_str().unwrap_or("no reason given")
        ))),
    }
}
