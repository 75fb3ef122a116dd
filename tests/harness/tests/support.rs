//! Free ports and workspace binaries.

#[test]
fn free_ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..20).map(|_| harness::free_port()).collect();
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ports.len());
    for port in ports {
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("a free port can be bound");
    }
}

#[test]
fn a_missing_workspace_binary_says_how_to_build_it() {
    let error = harness::workspace_bin("no-such-binary").expect_err("nothing builds that binary");
    let message = format!("{error:#}");
    assert!(message.contains("`no-such-binary` not found"), "{message}");
    assert!(
        message.contains("cargo build --workspace --bins"),
        "{message}"
    );
}

#[test]
fn workspace_binaries_are_found_beside_the_deps_directory() -> anyhow::Result<()> {
    // Test executables run from target/<profile>/deps; binaries are in target/<profile>.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let name = format!("harness-fake-binary-{}", std::process::id());
    let fake_binary = profile_dir.join(&name);
    std::fs::write(&fake_binary, b"")?;
    let found = harness::workspace_bin(&name);
    std::fs::remove_file(&fake_binary)?;
    assert_eq!(found?, fake_binary);
    Ok(())
}
