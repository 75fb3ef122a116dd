//! The admin console in a real browser (headless Chromium driven over WebDriver): sign-in, registering a cloud
//! and region, a one-click deploy that provisions a cluster and whose steps turn green live, the demo's logs,
//! what a viewer sees and may do, CSRF, session expiry and the audit log. Screenshots of the main pages go to
//! the test's directory, or with `EDGEFLEET_UPDATE_SCREENSHOTS=1` to docs/console/.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use e2e::{Stack, StackOptions, first_pod, write_container_log};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

struct Browser {
    client: Client,
    _driver: harness::Process,
}

async fn browser() -> Browser {
    let port = harness::free_port();
    let mut command = Command::new("chromedriver");
    command.arg(format!("--port={port}"));
    let mut driver = harness::Process::spawn("chromedriver", command).unwrap();
    driver
        .wait_for_line(
            "ChromeDriver was started successfully",
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US", "--force-device-scale-factor=1"]
        }
    });
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    Browser {
        client,
        _driver: driver,
    }
}

/// Pages redraw on a timer (lists every 10 s); an element found just before a redraw is gone when used, and
/// is simply found again.
fn rerendered(error: &fantoccini::error::CmdError) -> bool {
    error.to_string().contains("stale element")
}

fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

impl Browser {
    async fn find(&self, id: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&testid(id)))
            .await
            .unwrap_or_else(|e| panic!("no element {id}: {e}"))
    }

    async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// Waits until `css` matches something; panics with `what` after the timeout.
    async fn wait_for(&self, css: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.exists(css).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what} ({css})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, form: &str, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("{} [name=\"{name}\"]", testid(form))))
            .await
            .unwrap_or_else(|e| panic!("no field {name} in {form}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn select(&self, form: &str, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!(
                "{} select[name=\"{name}\"]",
                testid(form)
            )))
            .await
            .unwrap_or_else(|e| panic!("no select {name} in {form}: {e}"));
        field
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{name}: no option {value}: {e}"));
    }

    async fn click(&self, id: &str) {
        for _ in 0..5 {
            match self.find(id).await.click().await {
                Ok(_) => return,
                Err(e) if rerendered(&e) => continue,
                Err(e) => panic!("clicking {id}: {e}"),
            }
        }
        panic!("{id} kept being re-rendered under the click");
    }

    async fn nav(&self, page: &str) {
        self.click(&format!("nav-{page}")).await;
    }

    async fn sign_in(&self, stack: &Stack, username: &str, password: &str) {
        self.client.goto(&stack.console_url).await.unwrap();
        self.find("login-username")
            .await
            .send_keys(username)
            .await
            .unwrap();
        self.find("login-password")
            .await
            .send_keys(password)
            .await
            .unwrap();
        self.click("login-submit").await;
    }

    async fn text(&self, id: &str) -> String {
        for _ in 0..5 {
            match self.find(id).await.text().await {
                Ok(text) => return text,
                Err(e) if rerendered(&e) => continue,
                Err(e) => panic!("reading {id}: {e}"),
            }
        }
        panic!("{id} kept being re-rendered while read");
    }

    /// An attribute of the element, read again if the page re-rendered it in between (live updates do).
    async fn attr(&self, id: &str, name: &str) -> Option<String> {
        for _ in 0..5 {
            match self.find(id).await.attr(name).await {
                Ok(value) => return value,
                Err(e) if rerendered(&e) => continue,
                Err(e) => panic!("reading {name} of {id}: {e}"),
            }
        }
        panic!("{id} kept being re-rendered while read");
    }

    async fn screenshot(&self, name: &str) {
        // Let transitions and pending renders settle so the picture shows the page as a person sees it.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let png = self.client.screenshot().await.unwrap();
        // The committed pictures are refreshed on request only, so a test run leaves the tree clean.
        let dir: PathBuf = if std::env::var_os("EDGEFLEET_UPDATE_SCREENSHOTS").is_some() {
            harness::workspace_root().join("docs/console")
        } else {
            harness::test_dir().join("screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs `fetch` in the page (with the page's cookies) and returns [status, body].
    async fn fetch(
        &self,
        method: &str,
        path: &str,
        body: Value,
        csrf: Option<&str>,
    ) -> (u16, Value) {
        let script = r#"
            const [method, path, body, csrf, done] = arguments;
            const headers = {'Content-Type': 'application/json'};
            if (csrf) headers['X-CSRF-Token'] = csrf;
            const init = {method, headers, credentials: 'same-origin'};
            if (method !== 'GET') init.body = JSON.stringify(body);
            fetch(path, init)
              .then(async r => done([r.status, await r.text()]))
              .catch(e => done([0, String(e)]));
        "#;
        let result = self
            .client
            .execute_async(script, vec![json!(method), json!(path), body, json!(csrf)])
            .await
            .unwrap();
        let status = result[0].as_u64().unwrap() as u16;
        let body = serde_json::from_str(result[1].as_str().unwrap()).unwrap_or(Value::Null);
        (status, body)
    }

    async fn csrf_token(&self) -> String {
        let (_, session) = self
            .fetch("GET", "/api/v1/session", Value::Null, None)
            .await;
        session["csrf_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_end_to_end_in_chromium() {
    // Traces on, so the task page has a trace id to show.
    let receiver = e2e::otlp::OtlpReceiver::start().await.unwrap();
    let stack = Arc::new(
        Stack::start(
            StackOptions {
                provisioning: true,
                // Enough points for the overview's charts within the test.
                fleet_sample_seconds: 2,
                otlp_endpoint: Some(receiver.endpoint.clone()),
                ..StackOptions::default()
            }
            .with_templates(),
        )
        .await
        .unwrap(),
    );
    let outcome = tokio::spawn(walk_through_the_console(stack.clone())).await;
    // Pass or fail, the clusters go: the local stack runs each as processes outside the test.
    destroy_clusters(&stack).await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn destroy_clusters(stack: &Stack) {
    let clusters = stack.api.get("/clusters").await.unwrap();
    for cluster in clusters.as_array().unwrap() {
        let done = stack
            .destroy_cluster(cluster["id"].as_str().unwrap(), WAIT)
            .await
            .unwrap();
        assert_eq!(done["state"], "succeeded", "{done}");
    }
}

async fn walk_through_the_console(stack: Arc<Stack>) {
    let browser = browser().await;

    // Sign-in: a wrong password is refused with the server's message; the right one opens the overview.
    browser.client.goto(&stack.console_url).await.unwrap();
    browser.find("login-username").await;
    browser.screenshot("sign-in").await;
    browser.sign_in(&stack, "admin", "wrong-password-123").await;
    let refused = browser.text("login-error").await;
    assert!(refused.contains("wrong username or password"), "{refused}");
    browser
        .sign_in(&stack, "admin", &stack.admin_password)
        .await;
    let user = browser.text("user-menu").await;
    assert!(user.contains("admin"), "{user}");

    // Register a cloud and a region through the forms; a bad name is refused next to the field.
    browser.nav("clouds").await;
    browser.find("cloud-form").await;
    browser.fill("cloud-form", "name", "Bad Name!").await;
    browser.select("cloud-form", "provider", "local").await;
    browser.click("cloud-submit").await;
    browser.find("field-error-name").await;
    browser.fill("cloud-form", "name", "lab").await;
    browser.click("cloud-submit").await;
    browser.find("cloud-row-lab").await;
    let clouds = stack.api.get("/clouds").await.unwrap();
    assert_eq!(clouds[0]["name"], "lab", "{clouds}");
    let cloud_id = clouds[0]["id"].as_str().unwrap().to_string();
    browser.screenshot("clouds").await;

    browser.nav("regions").await;
    browser.find("region-form").await;
    browser
        .select("region-form", "cloud_account_id", &cloud_id)
        .await;
    browser.fill("region-form", "code", "lab-east").await;
    browser
        .fill("region-form", "display_name", "Lab East")
        .await;
    browser.click("region-submit").await;
    browser.find("region-row-lab-east").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let region_id = loop {
        let regions = stack.api.get("/regions").await.unwrap();
        if let Some(region) = regions.as_array().unwrap().first() {
            break region["id"].as_str().unwrap().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the region was not created"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // One-click deploy to the region, which has no cluster: one is provisioned with Terraform, the agent
    // installs itself, and every step turns green in place while the page stays loaded.
    browser.nav("demos").await;
    browser.find("deploy-form").await;
    browser.fill("deploy-form", "name", "hello").await;
    browser
        .select("deploy-form", "template", "fastapi-inference")
        .await;
    browser.select("deploy-form", "region", &region_id).await;
    browser
        .client
        .execute("window.__stillTheSamePage = true;", vec![])
        .await
        .unwrap();
    browser.click("deploy-submit").await;
    browser.find("step-ensure_cluster").await;
    browser
        .wait_for("[data-testid=\"step-ensure_cluster\"][data-state=\"running\"], [data-testid=\"step-ensure_cluster\"][data-state=\"succeeded\"]", "the first step to start")
        .await;
    browser.screenshot("demo-deploying").await;
    browser
        .wait_for(
            "[data-testid=\"step-publish_url\"][data-state=\"succeeded\"]",
            "the last step to turn green",
        )
        .await;
    for step in [
        "ensure_cluster",
        "ensure_agent",
        "render",
        "apply",
        "wait_ready",
        "publish_url",
    ] {
        let state = browser.attr(&format!("step-{step}"), "data-state").await;
        assert_eq!(state.as_deref(), Some("succeeded"), "{step}");
    }
    let same_page = browser
        .client
        .execute("return window.__stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, json!(true), "the steps updated without a reload");
    browser.wait_for(&testid("demo-url"), "the demo URL").await;
    let url = browser.text("demo-url").await;
    assert!(url.contains("hello.lab-east-demos"), "{url}");
    let status = browser.text("demo-status").await;
    assert!(status.to_lowercase().contains("online"), "{status}");
    // Every task of the deploy has finished by now; the charts' samples are checked once they cover this moment.
    let deploy_finished = chrono::Utc::now();

    // The demo's logs: a line its pod writes shows up in the page.
    let demos = stack.api.get("/demos").await.unwrap();
    let cluster_id = demos[0]["cluster_id"].as_str().unwrap().to_string();
    let local_cluster = stack.dir.join(format!(
        "terraform-work/{cluster_id}/terraform/region-cluster/local/.local-clusters/lab-east-demos"
    ));
    let kubeconfig = local_cluster.join("kubeconfig");
    let cluster_state_dir = local_cluster.join("cluster");
    let pod = first_pod(&kubeconfig, "demo-hello").unwrap();
    write_container_log(
        &cluster_state_dir,
        "demo-hello",
        &pod,
        "demo",
        "INFO:     Application startup complete.\nERROR:root:model shard 3 missing\n",
    )
    .await
    .unwrap();
    browser
        .wait_for("[data-testid=\"log-line\"]", "a log line in the demo page")
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let logs = browser.text("demo-logs").await;
        if logs.contains("model shard 3 missing") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log line not shown: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.screenshot("demo-online").await;

    // The cluster the deploy provisioned is ready, with its agent connected.
    browser.nav("clusters").await;
    browser.find("cluster-row-lab-east-demos").await;
    browser.screenshot("clusters").await;
    browser
        .client
        .find(Locator::Css(&format!(
            "{} a",
            testid("cluster-row-lab-east-demos")
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for("[data-testid=\"cluster-status\"]", "the cluster page")
        .await;
    let cluster_status = browser.text("cluster-status").await;
    assert!(
        cluster_status.to_lowercase().contains("ready"),
        "{cluster_status}"
    );

    // Log collection: an invalid namespace is refused by name in the form; a valid choice is saved and shown.
    browser.find("log-selection-form").await;
    browser
        .fill("log-selection-form", "namespaces", "kube-system, Bad_Name")
        .await;
    browser.click("log-selection-save").await;
    browser
        .wait_for(
            &format!("{} .form-errors *", testid("log-selection-form")),
            "the refused namespace",
        )
        .await;
    let refused = browser.text("log-selection-form").await;
    assert!(
        refused.contains("\"Bad_Name\" is not a namespace name"),
        "{refused}"
    );
    browser
        .fill("log-selection-form", "namespaces", "kube-system")
        .await;
    browser.click("log-selection-save").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while browser.text("log-selection").await != "kube-system" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the saved selection is not shown"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let demos_cluster = stack.api.get("/clusters").await.unwrap();
    let saved = demos_cluster
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lab-east-demos")
        .unwrap()["log_selection"]
        .clone();
    assert_eq!(
        saved,
        json!({"all_namespaces": false, "namespaces": ["kube-system"]})
    );
    browser.screenshot("cluster-log-selection").await;
    // The cluster's logs, preset from its page: the agent's own log is among them, marked as such.
    browser.click("cluster-logs-link").await;
    browser.find("logs-filters").await;
    browser.select("logs-filters", "stream", "agent").await;
    browser.click("logs-search").await;
    browser
        .wait_for(&testid("log-stream"), "an agent line in the results")
        .await;
    let results = browser.text("logs-results").await;
    assert!(results.contains("following container log"), "{results}");
    browser.screenshot("logs-agent").await;

    // Provisioning by hand: register a cluster to be built with Terraform, plan it, see the plan in the
    // confirmation, provision it, and watch it become ready.
    browser.nav("clusters").await;
    browser.find("cluster-form").await;
    browser.fill("cluster-form", "name", "edge-2").await;
    browser
        .select("cluster-form", "region_id", &region_id)
        .await;
    browser.select("cluster-form", "mode", "terraform").await;
    browser.click("cluster-submit").await;
    browser.click("cluster-plan").await;
    browser
        .wait_for(&testid("plan-summary"), "the plan summary")
        .await;
    let summary = browser.text("plan-summary").await;
    assert!(
        summary.contains("1 to add, 0 to change, 0 to destroy"),
        "{summary}"
    );
    browser
        .wait_for(
            "[data-testid=\"tracker-state\"][data-value=\"succeeded\"]",
            "the plan task finished",
        )
        .await;
    browser.click("cluster-provision").await;
    browser.find("confirm-ok").await;
    let dialog_plan = browser
        .client
        .find(Locator::Css(&format!(".modal {}", testid("plan-summary"))))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dialog_plan.contains("1 to add"),
        "the confirmation shows the plan: {dialog_plan}"
    );
    browser.screenshot("cluster-provision-confirm").await;
    browser.click("confirm-ok").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = browser.text("cluster-status").await.to_lowercase();
        if status.contains("ready") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "edge-2 never became ready: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    browser.screenshot("cluster").await;

    // The overview: lab-east healthy at a glance, with charts from the control plane's samples, and the samples
    // themselves count what happened in the region (the Terraform and demo tasks, their log lines).
    let samples = harness::wait_until(
        "three samples of lab-east with its agents connected, up to after the deploy",
        WAIT,
        Duration::from_millis(500),
        || async {
            let fleet = stack.api.get("/fleet?minutes=60").await.ok()?;
            let region = fleet["regions"]
                .as_array()?
                .iter()
                .find(|r| r["code"] == "lab-east")?
                .clone();
            let samples = region["samples"].as_array()?.clone();
            let covers_deploy = samples.iter().any(|s| {
                s["at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at >= deploy_finished)
            });
            (region["health"] == "healthy"
                && covers_deploy
                && samples
                    .iter()
                    .filter(|s| s["agents_connected"] == 2)
                    .count()
                    >= 3)
                .then_some(samples)
        },
    )
    .await
    .unwrap();
    let total = |key: &str| {
        samples
            .iter()
            .map(|s| s[key].as_i64().unwrap())
            .sum::<i64>()
    };
    assert!(total("tasks_succeeded") >= 1, "{samples:?}");
    assert!(total("log_lines") >= 1, "{samples:?}");
    assert!(
        samples.iter().any(|s| s["demos_online"] == 1),
        "{samples:?}"
    );
    browser.nav("overview").await;
    browser
        .wait_for(
            "[data-testid=\"region-health-lab-east\"][data-value=\"healthy\"]",
            "lab-east shown healthy",
        )
        .await;
    for metric in ["agents", "rtt", "tasks", "demos", "logs"] {
        let points = browser
            .attr(&format!("chart-lab-east-{metric}"), "data-points")
            .await
            .unwrap_or_default();
        assert!(
            points.parse::<usize>().unwrap_or(0) >= 3,
            "the {metric} chart has {points} points"
        );
    }
    let agents = browser.text("chart-lab-east-agents").await;
    assert!(agents.contains('2'), "two agents connected: {agents}");

    // A task's page shows the trace it belongs to.
    let tasks = stack.api.get("/tasks?limit=1").await.unwrap();
    let task = &tasks[0];
    let trace_id = task["trace_id"].as_str().expect("traces are on").to_owned();
    browser
        .client
        .goto(&format!(
            "{}#/tasks/{}",
            stack.console_url,
            task["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(browser.text("task-trace").await, trace_id);

    for page in ["overview", "templates", "tasks", "logs"] {
        browser.nav(page).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        browser.screenshot(page).await;
    }

    // Without the CSRF header the session cookie alone changes nothing.
    let (status, body) = browser
        .fetch(
            "POST",
            "/api/v1/clouds",
            json!({"name": "sneaky", "provider": "local"}),
            None,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("csrf")),
        "{body}"
    );

    // A viewer sees no deploy form or buttons, and the API refuses a deploy with 403.
    let (status, _) = stack
        .api
        .call(
            reqwest::Method::POST,
            "/users",
            Some(&json!({"username": "vera", "password": "viewer-password-1", "role": "viewer"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    browser.click("logout").await;
    browser.find("login-username").await;
    browser.sign_in(&stack, "vera", "viewer-password-1").await;
    browser.find("user-menu").await;
    browser.nav("demos").await;
    // The list is drawn (so the page is complete) and has no deploy form or demo actions for a viewer.
    browser.find("demo-row-hello").await;
    assert!(
        !browser.exists(&testid("deploy-form")).await,
        "a viewer sees no deploy form"
    );
    assert!(
        !browser.exists(&testid("nav-users")).await,
        "a viewer sees no admin pages"
    );
    browser
        .client
        .find(Locator::Css(&format!("{} a", testid("demo-row-hello"))))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.find("step-publish_url").await;
    for action in ["demo-update", "demo-stop", "demo-delete"] {
        assert!(
            !browser.exists(&testid(action)).await,
            "a viewer sees no {action} button"
        );
    }
    let csrf = browser.csrf_token().await;
    let (status, body) = browser
        .fetch(
            "POST",
            "/api/v1/demos",
            json!({"name": "nope", "template": "static-web", "region": region_id}),
            Some(&csrf),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("role viewer"),
        "{body}"
    );

    // An idle session expires: the next page load asks to sign in again.
    stack
        .postgres_query("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes' WHERE revoked_at IS NULL")
        .unwrap();
    browser.client.refresh().await.unwrap();
    browser.find("login-username").await;

    // The audit log shows what happened, with who did it.
    browser
        .sign_in(&stack, "admin", &stack.admin_password)
        .await;
    browser.find("user-menu").await;
    browser.nav("audit").await;
    browser
        .wait_for(&testid("audit-row"), "audit entries")
        .await;
    // Read in one go in the page, so a redraw between rows cannot leave a stale one.
    let all = browser
        .client
        .execute(
            "return [...document.querySelectorAll('[data-testid=\"audit-row\"]')].map(r => r.innerText).join('\\n');",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    for expected in [
        "POST /demos",
        "POST /clouds",
        "POST /regions",
        "login:admin",
        "user:vera",
    ] {
        assert!(
            all.contains(expected),
            "{expected} missing from the audit page:\n{all}"
        );
    }
    browser.screenshot("audit").await;

    // An API token made in the console is shown once and works for scripts.
    browser.nav("tokens").await;
    browser.find("token-form").await;
    browser.fill("token-form", "name", "ci-deployer").await;
    browser.select("token-form", "role", "operator").await;
    browser.fill("token-form", "ttl_days", "30").await;
    browser.click("token-submit").await;
    let shown = browser.text("new-token").await;
    let secret = shown
        .split_whitespace()
        .find(|word| word.starts_with("efa_"))
        .unwrap_or_else(|| panic!("no token in {shown:?}"))
        .to_string();
    let script = e2e::Api::new(stack.api.base().to_string(), secret);
    assert!(script.get("/clusters").await.is_ok(), "the new token works");
    // The picture is taken after leaving the page, so no token (even of this throwaway stack) is in it.
    browser.nav("overview").await;
    browser.nav("tokens").await;
    browser.find("token-row-ci-deployer").await;
    assert!(
        !browser.exists(&testid("new-token")).await,
        "a token is shown only once"
    );
    browser.screenshot("tokens").await;

    // Switching to Chinese changes the interface text.
    browser.click("lang-switch").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nav = browser.text("nav-demos").await;
    assert!(!nav.is_ascii(), "the navigation is in Chinese: {nav}");
    browser.nav("overview").await;
    browser.screenshot("overview-zh").await;

    browser.client.close().await.unwrap();
}
