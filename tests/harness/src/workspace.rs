//! Locating the workspace (its root, its own binaries: control plane, agent, kube-cluster in cargo's target
//! directory).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The path of the workspace binary `name` (e.g. `control-plane`, `node-agent`, `kube-cluster`), built
/// with the same profile as the running test.
///
/// Looks next to the running executable (`target/<profile>/deps/<test>` means `target/<profile>/`),
/// then in `$CARGO_TARGET_DIR/<profile>/`. Tests of one package cannot make cargo build another
/// package's binaries, so a missing binary is an error that says to build them first.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("find the running executable")?;
    let exe_dir = exe
        .parent()
        .context("the running executable has no directory")?;
    // Test binaries live in <profile>/deps, examples in <profile>/examples, binaries in <profile>.
    let profile_dir = match exe_dir.file_name().and_then(|dir| dir.to_str()) {
        Some("deps" | "examples") => exe_dir.parent().unwrap_or(exe_dir),
        _ => exe_dir,
    };
    let file_name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = vec![profile_dir.join(&file_name)];
    if let (Some(target_dir), Some(profile)) = (
        std::env::var_os("CARGO_TARGET_DIR"),
        profile_dir.file_name(),
    ) {
        candidates.push(Path::new(&target_dir).join(profile).join(&file_name));
    }
    if let Some(found) = candidates.iter().find(|candidate| candidate.is_file()) {
        return Ok(found.clone());
    }
    let looked_in: Vec<String> = candidates
        .iter()
        .map(|candidate| candidate.display().to_string())
        .collect();
    bail!(
        "workspace binary `{name}` not found (looked for {}); run `cargo build --workspace --bins` first \
         (with `--release` if the tests run in release mode)",
        looked_in.join(", ")
    )
}

/// The workspace's root, where `Cargo.lock` is. Found from the `CARGO_MANIFEST_DIR` cargo sets when it runs a test,
/// not from the one compiled in: the target directory is shared between clones (CI clones elsewhere), and cargo
/// reuses a crate compiled in another clone with that clone's path inside. Run outside cargo (a benchmark binary),
/// the compiled-in path is all there is.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .unwrap_or(&manifest_dir)
        .to_path_buf()
}
