//! Image templates: the repository's templates load, a broken one is rejected naming its file and field
//! while the rest load, and a changed template becomes a new revision.

use std::path::Path;

use e2e::{Stack, StackOptions};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_load_versioned_and_bad_ones_are_rejected_by_name() {
    let dir = harness::test_dir().join("templates");
    let shipped = harness::workspace_root().join("images/templates");
    copy_dir(&shipped, &dir);
    let shipped_count = std::fs::read_dir(&shipped)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert!(
        shipped_count >= 4,
        "the repository ships at least four templates"
    );
    std::fs::create_dir_all(dir.join("broken")).unwrap();
    std::fs::write(
        dir.join("broken/template.yaml"),
        "name: broken\nversion: 1.0.0\ntitle: Broken\nruntime: x\nprocess: x\nport: 0\nhealth_check_path: /\n\
         resources: {requests: {cpu: 1, memory: 1Gi}, limits: {cpu: 1, memory: 1Gi}}\nimage_required: true\n",
    )
    .unwrap();

    let mut stack = Stack::start(StackOptions {
        templates_dir: Some(dir.clone()),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let templates = stack.api.get("/templates").await.unwrap();
    let names: Vec<&str> = templates
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        shipped_count,
        "every shipped template loads: {names:?}"
    );
    assert!(!names.contains(&"broken"));
    for name in [
        "gradio-demo",
        "fastapi-inference",
        "static-web",
        "custom-image",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let log = stack.control_plane.log_text();
    assert!(
        log.contains("broken/template.yaml: field `port`: must be between 1 and 65535"),
        "{log}"
    );
    let gradio = templates
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "gradio-demo")
        .unwrap();
    assert_eq!(gradio["revision"], 1);
    assert!(gradio["dockerfile"].as_str().unwrap().contains("FROM"));

    // Change the template's content without touching its version: a new revision, the old one kept.
    let yaml_path = dir.join("gradio-demo/template.yaml");
    let yaml = std::fs::read_to_string(&yaml_path).unwrap();
    std::fs::write(&yaml_path, yaml.replacen("title:", "title: Changed -", 1)).unwrap();
    stack.restart_control_plane().await.unwrap();
    let revisions = stack.api.get("/templates/gradio-demo").await.unwrap();
    let revisions = revisions.as_array().unwrap();
    assert_eq!(revisions.len(), 2, "{revisions:?}");
    assert_eq!(
        (
            revisions[0]["revision"].as_i64(),
            revisions[0]["latest"].as_bool()
        ),
        (Some(2), Some(true))
    );
    assert_eq!(
        (
            revisions[1]["revision"].as_i64(),
            revisions[1]["latest"].as_bool()
        ),
        (Some(1), Some(false))
    );
    assert!(
        revisions[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("Changed -")
    );
    // An unchanged restart adds nothing.
    stack.restart_control_plane().await.unwrap();
    let all = stack.api.get("/templates?all=true").await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), shipped_count + 1);
}
