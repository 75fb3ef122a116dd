//! Console sign-in and sessions through the real HTTP API: argon2id passwords, the session cookie's flags,
//! CSRF on every state change, roles, rate limiting, idle expiry, sign-out, user and API token management, and
//! the audit log of all of it.

use e2e::api::problem_fields;
use e2e::{Stack, StackOptions};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A browser-like client: keeps the session cookie and sends the CSRF token on writes.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn new(stack: &Stack) -> Self {
        Self::from_address(stack, "127.0.0.1")
    }

    /// A browser on another host: loopback has every 127.x.y.z, so the control plane sees another address.
    fn from_address(stack: &Stack, address: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .local_address(Some(address.parse().unwrap()))
                .build()
                .unwrap(),
            base: stack.api.base().to_string(),
            cookie: None,
            csrf: None,
        }
    }

    async fn sign_in(
        &mut self,
        username: &str,
        password: &str,
    ) -> (StatusCode, Value, Option<String>) {
        let response = self
            .http
            .post(format!("{}/session", self.base))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let set_cookie = response
            .headers()
            .get(SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::OK {
            self.cookie = set_cookie
                .as_deref()
                .map(|c| c.split(';').next().unwrap().to_string());
            self.csrf = body["csrf_token"].as_str().map(str::to_string);
        }
        (status, body, set_cookie)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        if let (true, Some(token)) = (csrf, &self.csrf) {
            request = request.header("X-CSRF-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_csrf_roles_rate_limits_and_audit() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let mut admin = Browser::new(&stack);

    // Not signed in, wrong password, then the right one.
    let (status, body) = admin.call(Method::GET, "/session", None, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body, _) = admin.sign_in("admin", "not-the-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "wrong username or password");
    let (status, body, _) = admin.sign_in("nobody", "not-the-password").await;
    assert_eq!(
        (status, &body["error"]["message"]),
        (
            StatusCode::UNAUTHORIZED,
            &json!("wrong username or password")
        )
    );
    let (status, session, set_cookie) = admin.sign_in("admin", &stack.admin_password).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["role"], "admin");
    let set_cookie = set_cookie.unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }
    // The database holds a hash of the cookie and an argon2id hash of the password, never either value.
    let cookie_value = admin.cookie.clone().unwrap();
    let token = cookie_value.split('=').nth(1).unwrap();
    let stored = stack
        .postgres_query("SELECT token_sha256 || ' ' || (SELECT password_hash FROM users WHERE username = 'admin') FROM console_sessions")
        .unwrap();
    assert!(
        !stored.contains(token) && !stored.contains(&stack.admin_password),
        "{stored}"
    );
    assert!(stored.contains("$argon2id$"), "{stored}");

    // Reads need no CSRF token; writes do.
    let (status, _) = admin.call(Method::GET, "/clusters", None, false).await;
    assert_eq!(status, StatusCode::OK);
    let cloud = json!({"name": "lab", "provider": "local"});
    let (status, body) = admin
        .call(Method::POST, "/clouds", Some(cloud.clone()), false)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("csrf")),
        "{body}"
    );
    let (status, body) = admin.call(Method::POST, "/clouds", Some(cloud), true).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Editing: a rename works; credentials a provider does not take are refused by name.
    let cloud_path = format!("/clouds/{}", body["id"].as_str().unwrap());
    let (status, renamed) = admin
        .call(
            Method::PATCH,
            &cloud_path,
            Some(json!({"name": "lab-2"})),
            true,
        )
        .await;
    assert_eq!(
        (status, &renamed["name"]),
        (StatusCode::OK, &json!("lab-2")),
        "{renamed}"
    );
    let (status, body) = admin
        .call(
            Method::PATCH,
            &cloud_path,
            Some(json!({"credentials": {"secret_id": "x"}})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["field"],
        "credentials.secret_id"
    );

    // A viewer reads but cannot change anything; every refusal says why.
    let (status, body) = admin
        .call(
            Method::POST,
            "/users",
            Some(json!({"username": "vera", "password": "short", "role": "boss"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = problem_fields(&body);
    assert_eq!(fields, ["password", "role"], "{body}");
    let (status, vera) = admin
        .call(
            Method::POST,
            "/users",
            Some(json!({"username": "vera", "password": "viewer-password-1", "role": "viewer"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vera}");
    let mut viewer = Browser::new(&stack);
    assert_eq!(
        viewer.sign_in("vera", "viewer-password-1").await.0,
        StatusCode::OK
    );
    let (status, _) = viewer.call(Method::GET, "/demos", None, false).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = viewer
        .call(
            Method::POST,
            "/demos",
            Some(json!({"name": "x", "template": "static-web", "region": "auto"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["error"]["message"],
        "vera (role viewer) may not deploy demos; that needs role operator or higher"
    );
    let (status, _) = viewer.call(Method::GET, "/users", None, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The last admin cannot lock themselves out; disabling a user ends their sessions.
    let admin_id = session["user"]["id"].as_str().unwrap().to_string();
    let (status, body) = admin
        .call(
            Method::PATCH,
            &format!("/users/{admin_id}"),
            Some(json!({"role": "viewer"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let vera_id = vera["id"].as_str().unwrap();
    let (status, _) = admin
        .call(
            Method::PATCH,
            &format!("/users/{vera_id}"),
            Some(json!({"disabled": true})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = viewer.call(Method::GET, "/demos", None, false).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled user's session ends"
    );

    // API tokens for scripts: shown once, usable, revocable.
    let (status, created) = admin
        .call(
            Method::POST,
            "/api-tokens",
            Some(json!({"name": "ci", "role": "operator", "ttl_days": 30})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap();
    let script = e2e::Api::new(stack.api.base().to_string(), secret.to_string());
    assert!(script.get("/clusters").await.is_ok());
    let (status, listed) = admin.call(Method::GET, "/api-tokens", None, false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !listed.to_string().contains(secret),
        "listing never shows a token"
    );
    let (status, _) = admin
        .call(
            Method::DELETE,
            &format!("/api-tokens/{}", created["id"].as_str().unwrap()),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        script.get("/clusters").await.is_err(),
        "a revoked token is refused"
    );

    // Rate limiting: after five failures for one username even the right password waits.
    let (status, _) = admin
        .call(
            Method::POST,
            "/users",
            Some(
                json!({"username": "otto", "password": "operator-password-1", "role": "operator"}),
            ),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut otto = Browser::new(&stack);
    for _ in 0..5 {
        assert_eq!(
            otto.sign_in("otto", "wrong-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, body, _) = otto.sign_in("otto", "operator-password-1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // An idle session expires (time is moved on in the database), and sign-out ends one at once.
    let mut idle = Browser::new(&stack);
    assert_eq!(
        idle.sign_in("admin", &stack.admin_password).await.0,
        StatusCode::OK
    );
    stack
        .postgres_query("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes' WHERE revoked_at IS NULL AND id = (SELECT id FROM console_sessions ORDER BY created_at DESC LIMIT 1)")
        .unwrap();
    let (status, body) = idle.call(Method::GET, "/session", None, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["error"]["message"],
        "your session has expired or was ended; sign in again"
    );
    let (status, _) = admin.call(Method::DELETE, "/session", None, true).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.call(Method::GET, "/clusters", None, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The audit log has every write: who, what, where from, and the outcome.
    let auditor = e2e::Api::new(stack.api.base().to_string(), stack.admin_token.clone());
    let audit = auditor.get("/audit?limit=200").await.unwrap();
    let entries = audit["entries"].as_array().unwrap();
    let has = |actor: &str, action: &str, status: u16| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["action"] == action
                && e["status"] == status
                && e["ip"] == "127.0.0.1"
        })
    };
    assert!(has("login:admin", "POST /session", 401), "{audit}");
    assert!(has("user:admin", "POST /session", 200), "{audit}");
    assert!(
        has("user:admin", "POST /clouds", 403),
        "the CSRF refusal: {audit}"
    );
    assert!(has("user:admin", "POST /clouds", 201), "{audit}");
    assert!(has("user:vera", "POST /demos", 403), "{audit}");
    assert!(has("user:admin", "PATCH /users/{id}", 409), "{audit}");
    assert!(has("user:admin", "DELETE /api-tokens/{id}", 204), "{audit}");
    assert!(has("login:otto", "POST /session", 429), "{audit}");
    assert!(has("user:admin", "DELETE /session", 204), "{audit}");
    assert!(!audit.to_string().contains("GET "), "reads are not audited");
    let filtered = auditor.get("/audit?actor=user:vera").await.unwrap();
    assert!(
        filtered["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "user:vera")
    );
    assert_eq!(
        filtered["total"],
        filtered["entries"].as_array().unwrap().len()
    );
}

/// The sign-in limit holds under concurrency (every attempt is counted before its password is checked), a
/// stranger elsewhere cannot lock an account out, guessing many usernames from one address is stopped, and
/// every refused sign-in is audited, however long the name.
#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_limit_holds_under_concurrency_without_locking_the_owner_out() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let attacker = Browser::from_address(&stack, "127.0.0.9");
    let guesses = (0..40).map(|i| {
        let mut browser = Browser {
            http: attacker.http.clone(),
            base: attacker.base.clone(),
            cookie: None,
            csrf: None,
        };
        async move { browser.sign_in("admin", &format!("guess-{i}")).await.0 }
    });
    let statuses = futures::future::join_all(guesses).await;
    let evaluated = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((evaluated, limited), (5, 35), "{statuses:?}");
    // Even the right password is refused to that address now; the owner elsewhere signs in.
    let mut attacker = attacker;
    assert_eq!(
        attacker.sign_in("admin", &stack.admin_password).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut owner = Browser::from_address(&stack, "127.0.0.10");
    let (status, body, _) = owner.sign_in("admin", &stack.admin_password).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Spraying usernames from one address: twenty attempts in all, then that address is refused.
    let mut sprayer = Browser::from_address(&stack, "127.0.0.11");
    for i in 0..20 {
        assert_eq!(
            sprayer.sign_in(&format!("user{i}"), "password-1").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sprayer.sign_in("admin", &stack.admin_password).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // A 20 kB username is refused and audited under its first hundred characters.
    let mut long = Browser::from_address(&stack, "127.0.0.12");
    let name = "x".repeat(20_000);
    assert_eq!(
        long.sign_in(&name, "password-1").await.0,
        StatusCode::UNAUTHORIZED
    );
    let audited = stack
        .postgres_query(&format!(
            "SELECT status FROM audit_log WHERE actor = 'login:{}' AND action = 'POST /session'",
            "x".repeat(100)
        ))
        .unwrap();
    assert_eq!(audited.trim(), "401", "{audited}");
    let evaluated_rows = stack
        .postgres_query(
            "SELECT count(*) FROM audit_log WHERE actor = 'login:admin' AND ip = '127.0.0.9' AND status = 401",
        )
        .unwrap();
    assert_eq!(evaluated_rows.trim(), "5");
}
