//! Spawning children that the kernel kills when the test process dies, and the accounts servers run as.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::thread;

use anyhow::{Context, bail};

/// Signal the kernel sends to a child when the test process is gone (`PR_SET_PDEATHSIG`).
pub type DeathSignal = libc::c_int;

struct SpawnRequest {
    command: Command,
    death_signal: DeathSignal,
    reply: Sender<io::Result<Child>>,
}

/// Spawns `command` so that it receives `death_signal` as soon as this process exits, however it exits
/// (normal exit, panic, `kill -9`).
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the process. Test threads
/// end after each test, so every spawn goes through one thread that lives as long as the process.
pub fn spawn_tied_to_this_process(
    command: Command,
    death_signal: DeathSignal,
) -> io::Result<Child> {
    static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for request in requests {
                    let child = spawn_with_death_signal(request.command, request.death_signal);
                    // The requester only goes away if it panicked; the child then dies with the process.
                    let _ = request.reply.send(child);
                }
            })
            .expect("start the harness spawner thread");
        sender
    });
    let (reply, child) = mpsc::channel();
    spawner
        .send(SpawnRequest {
            command,
            death_signal,
            reply,
        })
        .map_err(|_| io::Error::other("the harness spawner thread is gone"))?;
    child
        .recv()
        .map_err(|_| io::Error::other("the harness spawner thread dropped a request"))?
}

fn spawn_with_death_signal(mut command: Command, death_signal: DeathSignal) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe calls
    // (prctl, getppid) and builds an io::Error from a raw errno, which does not allocate.
    unsafe {
        command.pre_exec(move || {
            // This runs after std has switched uid/gid, which would have cleared the setting.
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then nobody would send the signal.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// The unprivileged account a server runs as when the tests run as root (servers refuse to run as root).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServiceAccount {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl ServiceAccount {
    /// `None` when not running as root: then servers simply run as the current user.
    pub(crate) fn for_server(user_name: &str) -> anyhow::Result<Option<ServiceAccount>> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        look_up_user(user_name)?
            .map(Some)
            .with_context(|| {
                format!(
                    "running as root, and servers refuse to run as root, but user `{user_name}` does not exist; \
                     run scripts/install-deps.sh (the server package creates it)"
                )
            })
    }

    /// Makes `command` run as this account.
    pub(crate) fn apply(self, command: &mut Command) {
        command.uid(self.uid).gid(self.gid);
    }

    /// Hands `path` (a file or directory the harness created) to this account.
    pub(crate) fn take_ownership(self, path: &Path) -> anyhow::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {} to uid {}", path.display(), self.uid))
    }
}

fn look_up_user(user_name: &str) -> anyhow::Result<Option<ServiceAccount>> {
    let name = CString::new(user_name)?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes into it and into `buffer`, whose length we pass.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call.
    let status = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 {
        bail!(
            "looking up user `{user_name}`: {}",
            io::Error::from_raw_os_error(status)
        );
    }
    Ok((!found.is_null()).then_some(ServiceAccount {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    }))
}
