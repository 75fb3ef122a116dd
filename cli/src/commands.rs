//! Each command: one or a few API calls, then what is printed. Waiting polls the API until a condition holds.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::login::{self, Login, Overrides};
use crate::output::{self, Column, Format};
use crate::{CliError, Client, ClusterAction, DemoAction, TaskAction};

/// How often `--wait`, `--watch` and `--follow` look again.
const POLL: Duration = Duration::from_millis(500);

const CLUSTER_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("REGION", "/region_code"),
    ("STATUS", "/status"),
    ("AGENT", "/agent/connected"),
    ("KUBERNETES", "/agent/kubernetes_version"),
    ("NODES", "/agent/node_count"),
    ("ID", "/id"),
];
const TASK_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("KIND", "/kind"),
    ("STATE", "/state"),
    ("ATTEMPTS", "/attempts"),
    ("CREATED", "/created_at"),
    ("ERROR", "/error"),
];
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

pub async fn login(path: &Path, overrides: Overrides, token_stdin: bool) -> Result<(), CliError> {
    let token = match (token_stdin, overrides.token) {
        (true, Some(_)) => {
            return Err(CliError::Usage(
                "give the token either on standard input or with --token/EDGEFLEET_TOKEN, not both"
                    .into(),
            ));
        }
        (true, None) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| CliError::Usage(format!("cannot read the token: {error}")))?;
            text.trim().to_owned()
        }
        (false, Some(token)) => token,
        (false, None) => {
            return Err(CliError::Usage(
                "no token: pass --token-stdin (and pipe it in) or set EDGEFLEET_TOKEN".into(),
            ));
        }
    };
    let Some(url) = overrides.url else {
        return Err(CliError::Usage(
            "--url (or EDGEFLEET_URL) is required to log in".into(),
        ));
    };
    if token.is_empty() {
        return Err(CliError::Usage("the token is empty".into()));
    }
    // Proves both the URL and the token before anything is saved.
    let client = Client::new(&url, &token)?;
    client.get("/clusters").await?;
    login::save(
        path,
        &Login {
            url: url.clone(),
            token,
        },
    )?;
    eprintln!("logged in to {url}; saved in {}", path.display());
    Ok(())
}

pub async fn clouds(client: &Client, format: Format) -> Result<(), CliError> {
    let clouds = client.get("/clouds").await?;
    output::print(
        format,
        &clouds,
        &[
            ("NAME", "/name"),
            ("PROVIDER", "/provider"),
            ("REGIONS", "/region_count"),
            ("ID", "/id"),
        ],
    );
    Ok(())
}

pub async fn regions(client: &Client, format: Format) -> Result<(), CliError> {
    let regions = client.get("/regions").await?;
    output::print(
        format,
        &regions,
        &[
            ("CODE", "/code"),
            ("NAME", "/display_name"),
            ("CLOUD", "/cloud_name"),
            ("PROVIDER", "/provider"),
            ("ENABLED", "/enabled"),
            ("CLUSTERS", "/cluster_count"),
            ("ID", "/id"),
        ],
    );
    Ok(())
}

pub async fn templates(client: &Client, format: Format) -> Result<(), CliError> {
    let templates = client.get("/templates").await?;
    output::print(
        format,
        &templates,
        &[
            ("NAME", "/name"),
            ("VERSION", "/version"),
            ("TITLE", "/title"),
            ("RUNTIME", "/runtime"),
            ("PORT", "/port"),
            ("DEFAULT IMAGE", "/default_image"),
        ],
    );
    Ok(())
}

pub async fn clusters(
    client: &Client,
    format: Format,
    action: ClusterAction,
) -> Result<(), CliError> {
    match action {
        ClusterAction::List => {
            output::print(format, &client.get("/clusters").await?, CLUSTER_COLUMNS)
        }
        ClusterAction::Get { cluster } => {
            let id = find(client, "/clusters", "cluster", &cluster, "/name").await?;
            output::print(
                format,
                &client.get(&format!("/clusters/{id}")).await?,
                CLUSTER_COLUMNS,
            );
        }
    }
    Ok(())
}

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
            let manifest = read_manifest(&file)?;
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
            let task = client.get(&format!("/tasks/{}", path_part(&id)?)).await?;
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
                .post(&format!("/tasks/{}/cancel", path_part(&id)?), &json!({}))
                .await?;
            output::print(format, &task, TASK_COLUMNS);
            Ok(())
        }
        TaskAction::Logs { id, follow } => {
            task_logs(client, format, &path_part(&id)?, follow).await
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
            let mut variables = serde_json::Map::new();
            for pair in env {
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(CliError::Usage(format!("--env {pair:?} is not NAME=VALUE")));
                };
                variables.insert(key.to_owned(), json!(value));
            }
            let mut body = json!({"name": name, "template": template, "region": region,
                                  "env": variables, "replicas": replicas});
            if let Some(image) = image {
                body["image"] = json!(image);
            }
            let demo = client.post("/demos", &body).await?;
            if wait {
                watch_demo(client, format, &text(&demo, "/id"), |_| false).await
            } else {
                print_demo(format, &demo);
                Ok(())
            }
        }
        DemoAction::Status { name, watch } => {
            let id = find(client, "/demos", "demo", &name, "/name").await?;
            if watch {
                watch_demo(client, format, &id, |_| false).await
            } else {
                let demo = client.get(&format!("/demos/{id}")).await?;
                print_demo(format, &demo);
                Ok(())
            }
        }
        DemoAction::Delete { name, wait } => {
            let id = find(client, "/demos", "demo", &name, "/name").await?;
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
fn path_part(id: &str) -> Result<String, CliError> {
    uuid::Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| CliError::Usage(format!("{id:?} is not a task id (a UUID)")))
}

fn read_manifest(file: &Path) -> Result<String, CliError> {
    let read = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(file)
    };
    read.map_err(|error| CliError::Usage(format!("cannot read {}: {error}", file.display())))
}

fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}
