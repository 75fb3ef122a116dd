//! Who may use the control plane: logging in, console users and API tokens.

use std::path::Path;

use serde_json::{Value, json};

use super::{api_word, find, read_secret_stdin};
use crate::login::{self, Login, Overrides};
use crate::output::{self, Column, Format};
use crate::{CliError, Client, TokenAction, UserAction};

const USER_COLUMNS: &[Column] = &[
    ("USERNAME", "/username"),
    ("ROLE", "/role"),
    ("DISABLED", "/disabled"),
    ("LAST LOGIN", "/last_login_at"),
    ("ID", "/id"),
];
const TOKEN_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("ROLE", "/role"),
    ("EXPIRES", "/expires_at"),
    ("REVOKED", "/revoked_at"),
    ("LAST USED", "/last_used_at"),
    ("ID", "/id"),
];

pub async fn login(path: &Path, overrides: Overrides, token_stdin: bool) -> Result<(), CliError> {
    let token = match (token_stdin, overrides.token) {
        (true, Some(_)) => {
            return Err(CliError::Usage(
                "give the token either on standard input or with --token/EDGEFLEET_TOKEN, not both"
                    .into(),
            ));
        }
        (true, None) => read_secret_stdin("token")?,
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
    if token.trim().is_empty() {
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

pub async fn users(client: &Client, format: Format, action: UserAction) -> Result<(), CliError> {
    let user = match action {
        UserAction::List => client.get("/users").await?,
        UserAction::Create { username, role } => {
            let password = read_secret_stdin("password")?;
            client
                .post(
                    "/users",
                    &json!({"username": username, "role": api_word(role), "password": password}),
                )
                .await?
        }
        UserAction::Update {
            username,
            role,
            disable,
            enable,
            password_stdin,
        } => {
            let mut change = serde_json::Map::new();
            if let Some(role) = role {
                change.insert("role".into(), json!(api_word(role)));
            }
            if disable || enable {
                change.insert("disabled".into(), json!(disable));
            }
            if password_stdin {
                change.insert("password".into(), json!(read_secret_stdin("password")?));
            }
            if change.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --role, --disable, --enable or --password-stdin"
                        .into(),
                ));
            }
            let id = find(client, "/users", "user", &username, "/username").await?;
            client
                .patch(&format!("/users/{id}"), &Value::Object(change))
                .await?
        }
    };
    output::print(format, &user, USER_COLUMNS);
    Ok(())
}

pub async fn tokens(client: &Client, format: Format, action: TokenAction) -> Result<(), CliError> {
    match action {
        TokenAction::List => {
            output::print(format, &client.get("/api-tokens").await?, TOKEN_COLUMNS)
        }
        TokenAction::Create {
            name,
            role,
            ttl_days,
        } => {
            let mut body = json!({"name": name, "role": api_word(role)});
            if let Some(days) = ttl_days {
                body["ttl_days"] = json!(days);
            }
            let created = client.post("/api-tokens", &body).await?;
            let mut columns = TOKEN_COLUMNS.to_vec();
            columns.push(("TOKEN", "/token"));
            output::print(format, &created, &columns);
            if format == Format::Table {
                eprintln!("the token is shown this once; only its digest is kept");
            }
        }
        TokenAction::Revoke { name } => {
            let tokens = client.get("/api-tokens").await?;
            // Names may repeat across revoked tokens: a name means the one still in force.
            let id = tokens
                .as_array()
                .into_iter()
                .flatten()
                .find(|item| {
                    item["id"] == name.as_str()
                        || (item["name"] == name.as_str() && item["revoked_at"].is_null())
                })
                .and_then(|item| item["id"].as_str().map(str::to_owned))
                .ok_or_else(|| CliError::NotFound(format!("no API token named {name:?}")))?;
            client.delete(&format!("/api-tokens/{id}")).await?;
            let revoked = client.get("/api-tokens").await?;
            let revoked = revoked
                .as_array()
                .into_iter()
                .flatten()
                .find(|item| item["id"] == id.as_str())
                .cloned()
                .unwrap_or_else(|| json!({"id": id}));
            output::print(format, &revoked, TOKEN_COLUMNS);
        }
    }
    Ok(())
}
