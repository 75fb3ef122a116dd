//! The admin console: a single-page app (plain HTML, CSS and JavaScript modules, no build step) embedded in the
//! binary and served by the control plane itself; it talks to `/api/v1` with the session cookie. See docs/console.md.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_CSS: &str = include_str!("assets/app.css");

/// One literal per module names both its URL under `/console/js/` and its file, so the two cannot differ.
macro_rules! modules {
    ($($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("assets/js/", $path)))),+]
    };
}

/// The console's ES modules, by their path under `/console/js/`: the page loads `main.js`, which imports the rest.
const MODULES: &[(&str, &str)] = modules![
    "main.js",
    "state.js",
    "i18n.js",
    "i18n/text.js",
    "dom.js",
    "api.js",
    "ui.js",
    "charts.js",
    "forms.js",
    "shell.js",
    "pages/shared.js",
    "pages/overview.js",
    "pages/clouds.js",
    "pages/regions.js",
    "pages/clusters.js",
    "pages/templates.js",
    "pages/demos.js",
    "pages/demo-logs.js",
    "pages/tasks.js",
    "pages/logs.js",
    "pages/users.js",
    "pages/tokens.js",
    "pages/audit.js",
];

/// No inline script or style, nothing from other origins, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route(
            "/console/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/console/js/{*path}", get(js_module))
        // Deep links (`/console/demos/...`) load the app, which routes on the client.
        .route("/console/{*path}", get(index))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// Only the modules in `MODULES` exist: nothing is read from the filesystem.
async fn js_module(Path(path): Path<String>) -> Response {
    match MODULES.iter().find(|(name, _)| *name == path) {
        Some(&(_, source)) => asset("text/javascript; charset=utf-8", source),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // Served from the binary: a new release is a new binary, so revalidate rather than cache stale code.
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::MODULES;

    /// The specifiers of a module's static imports: the quoted text after `from` on each line that opens
    /// (`import { a } from '...'`) or closes (`} from '...'`) an import statement.
    fn imports(source: &str) -> Vec<&str> {
        source
            .lines()
            .filter(|line| line.starts_with("import ") || line.starts_with("} from "))
            .filter_map(|line| {
                let rest = &line[line.find(" from '")? + " from '".len()..];
                Some(&rest[..rest.find('\'')?])
            })
            .collect()
    }

    /// The `MODULES` path that a relative specifier in the module at `from` points to, as the browser resolves it.
    fn resolve(from: &str, specifier: &str) -> String {
        assert!(
            specifier.starts_with("./") || specifier.starts_with("../"),
            "{from}: {specifier} is not a relative path (there is no import map)"
        );
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop(); // the importing file
        for part in specifier.split('/') {
            match part {
                "." => {}
                ".." => assert!(
                    parts.pop().is_some(),
                    "{from}: {specifier} leaves /console/js/"
                ),
                _ => parts.push(part),
            }
        }
        parts.join("/")
    }

    /// A module missing from `MODULES` would be a 404 in the browser and the console would not start.
    #[test]
    fn every_import_is_served_and_every_module_imported() {
        let mut imported = vec!["main.js".to_string()];
        for (path, source) in MODULES {
            for specifier in imports(source) {
                let target = resolve(path, specifier);
                assert!(
                    MODULES.iter().any(|&(name, _)| name == target),
                    "{path} imports {specifier}, which is not in MODULES"
                );
                imported.push(target);
            }
        }
        for (path, _) in MODULES {
            assert!(
                imported.contains(&path.to_string()),
                "{path} is in MODULES but nothing imports it"
            );
        }
    }
}
