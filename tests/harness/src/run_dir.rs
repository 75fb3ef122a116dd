//! The per-process directory that holds server data and logs, and the janitor that removes it afterwards.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Once, OnceLock};

use anyhow::Context;

/// Set to any value to keep every run's logs, not only those of runs in which a test panicked.
const KEEP_LOGS_ENV: &str = "HARNESS_KEEP_LOGS";

/// A file whose presence tells the janitor to keep the logs (server data directories are removed anyway).
const KEEP_MARKER: &str = "KEEP";

/// Waits for end-of-file on stdin, i.e. for the test process to be gone, then deletes the run directory.
/// Servers get their parent-death signal at the same moment and may still be writing while they exit,
/// so deletion is retried for a few seconds.
const JANITOR_SCRIPT: &str = r#"
trap '' HUP INT
run_dir=$1
cat >/dev/null
if [ -e "$run_dir/KEEP" ]; then set -- "$run_dir"/*/data; else set -- "$run_dir"; fi
for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    rm -rf -- "$@" 2>/dev/null
    left=
    for path in "$@"; do [ -e "$path" ] && left=yes; done
    [ -z "$left" ] && exit 0
    sleep 0.5
done
"#;

struct RunDir {
    path: PathBuf,
    /// Never written to: the janitor only waits for this pipe to close, which the kernel does when the
    /// process ends, however it ends.
    _janitor_stdin: ChildStdin,
}

/// This process's run directory, `$TMPDIR/harness-<binary>-XXXXXX`, created on first use.
pub(crate) fn run_dir() -> &'static Path {
    static RUN_DIR: OnceLock<RunDir> = OnceLock::new();
    &RUN_DIR
        .get_or_init(|| {
            create_run_dir().unwrap_or_else(|error| {
                panic!("harness: cannot create its run directory: {error:#}")
            })
        })
        .path
}

fn create_run_dir() -> anyhow::Result<RunDir> {
    let path = tempfile::Builder::new()
        .prefix(&format!("harness-{}-", binary_stem()))
        .tempdir()
        .context("create a temporary directory")?
        .keep();
    // Servers run as other users (postgres, clickhouse) and must be able to reach their subdirectories.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    let mut janitor = Command::new("sh")
        .args(["-c", JANITOR_SCRIPT, "harness-janitor"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that Ctrl-C in a terminal, which kills the tests, does not kill it too.
        .process_group(0)
        .spawn()
        .context("start the run directory's janitor (sh)")?;
    let janitor_stdin = janitor.stdin.take().expect("stdin is piped");
    if std::env::var_os(KEEP_LOGS_ENV).is_some() {
        keep_logs(&path);
    }
    keep_logs_when_a_test_panics(path.clone());
    Ok(RunDir {
        path,
        _janitor_stdin: janitor_stdin,
    })
}

/// The test binary's name without cargo's hash suffix, kept short because the PostgreSQL socket path
/// inside the run directory must stay under 108 bytes.
fn binary_stem() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(Path::file_stem)
        .and_then(|stem| stem.to_str())
        .unwrap_or("test");
    let without_hash = stem.rsplit_once('-').map_or(stem, |(name, _hash)| name);
    safe_file_name(without_hash).chars().take(24).collect()
}

fn keep_logs(run_dir: &Path) {
    // Best effort: failing to keep logs must not fail a test.
    let _ = fs::write(run_dir.join(KEEP_MARKER), b"");
}

fn keep_logs_when_a_test_panics(run_dir: PathBuf) {
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        static ANNOUNCE: Once = Once::new();
        ANNOUNCE.call_once(|| {
            keep_logs(&run_dir);
            eprintln!(
                "harness: a test panicked; logs of this run are kept in {}",
                run_dir.display()
            );
        });
        previous_hook(info);
    }));
}

/// A directory for the current test's files (process logs, generated configs), `<run dir>/<test name>`.
///
/// The test name comes from the thread name the test runner gives each test; code outside a test
/// thread (a `main`, a spawned task's worker thread) gets a directory named after its thread instead.
pub fn test_dir() -> PathBuf {
    let thread = std::thread::current();
    let dir = run_dir().join(safe_file_name(thread.name().unwrap_or("unnamed-thread")));
    fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("harness: cannot create {}: {error}", dir.display()));
    dir
}

/// Replaces everything but ASCII letters, digits, `-`, `_` and `.` so the result is a plain file name.
pub(crate) fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
