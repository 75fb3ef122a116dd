#!/usr/bin/env bash
# Static checks of images/ (image templates and the product Dockerfiles); works offline, needs no Docker engine.
#
#  1. scripts/check_images.py on the repository (PyYAML, installed here with pip if missing): template.yaml
#     schema, README.md and Dockerfile presence, Dockerfile rules (pinned FROM, numeric non-root USER, EXPOSE,
#     HEALTHCHECK or `# health:` comment, CMD = process, COPY sources, verified downloads, cargo --locked),
#     pinned requirements, Python syntax, `nginx -t` when nginx is on PATH. See images/README.md.
#  2. a self-test: a copy of images/ is broken in several ways in a temporary directory and each problem must
#     be reported (and the exit status must be non-zero), so the check cannot silently pass everything.
#
# Every problem is printed as `file: field: message`; the exit status is non-zero if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { echo "check-images: $*"; }
fail() {
    echo "check-images: FAILED: $*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 is not on PATH"

PYYAML_VERSION=6.0.3
if ! python3 -c "import yaml" 2>/dev/null; then
    say "installing PyYAML==$PYYAML_VERSION"
    pip_args=(install --quiet --disable-pip-version-check "PyYAML==$PYYAML_VERSION")
    python3 -m pip "${pip_args[@]}" 2>/dev/null ||
        python3 -m pip "${pip_args[@]}" --break-system-packages ||
        fail "could not install PyYAML with pip"
fi

work=$(mktemp -d -t check-images-XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- 1. the repository ---------------------------------------------------------------------------------
say "scripts/check_images.py"
python3 -B scripts/check_images.py "$repo" || fail "problems listed above"

# --- 2. the check can fail -----------------------------------------------------------------------------
copy=$work/repo
mkdir -p "$copy/scripts"
cp -r images "$copy/"
cp scripts/check_images.py "$copy/scripts/"
# The product Dockerfiles' build context is the repository root: link the rest of it in.
for entry in *; do
    [[ $entry == images || $entry == scripts || $entry == target ]] && continue
    ln -s "$repo/$entry" "$copy/$entry"
done

python3 - "$copy/images" <<'EOF'
import sys
from pathlib import Path

images = Path(sys.argv[1])


def edit(rel, old, new):
    path = images / rel
    text = path.read_text()
    assert old in text, f"self-test: {old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


edit("templates/gradio-demo/template.yaml", "port: 7860", "port: 70000")
edit("templates/gradio-demo/template.yaml", "latest: true", "latest: true\nhealth_path: /")
edit("templates/gradio-demo/requirements.txt", "gradio==6.31.0", "gradio")
edit("templates/fastapi-inference/template.yaml", "  - name: MODEL_PATH", "  - name: model-path")
edit("templates/fastapi-inference/template.yaml", "memory: 256Mi", "memory: lots")
edit("templates/fastapi-inference/template.yaml", 'version: "1.0.0"', 'version: "1.0"')
edit("templates/fastapi-inference/Dockerfile", "EXPOSE 8000\n", "")
edit("templates/static-web/Dockerfile", "nginx-unprivileged:1.28-alpine", "nginx-unprivileged:latest")
edit("templates/static-web/Dockerfile", "USER 101", "USER root")
edit("templates/static-web/Dockerfile", "/healthz", "/status")
edit("control-plane/Dockerfile", "FROM debian:bookworm-slim AS terraform", "FROM debian AS terraform")
edit("control-plane/Dockerfile", 'echo "${sum}  /tmp/terraform.zip" | sha256sum -c -; \\\n', "")
edit("node-agent/Dockerfile", "USER 65532:65532", "USER 1000:1000")
edit("node-agent/Dockerfile", "--release --locked -p node-agent", "--release -p node-agent")
(images / "templates/custom-image/README.md").unlink()
(images / "templates/custom-image/Dockerfile").write_text("FROM scratch\n")
EOF

if out=$(python3 -B "$copy/scripts/check_images.py" "$copy" 2>&1); then
    echo "$out"
    fail "self-test: check_images.py passed a broken copy"
fi
# Each entry: "file|message" (line numbers are left out so that editing the Dockerfiles does not break this).
expected=(
    "images/templates/gradio-demo/template.yaml|port: 70000 is not between 1 and 65535"
    "images/templates/gradio-demo/template.yaml|health_path: unknown field"
    "images/templates/gradio-demo/Dockerfile|EXPOSE: the final stage exposes 7860, but template.yaml has port 70000"
    "images/templates/gradio-demo/requirements.txt|'gradio' is not pinned as name==version"
    "images/templates/fastapi-inference/template.yaml|env[2].name: 'model-path' does not match ^[A-Z_][A-Z0-9_]*$"
    "images/templates/fastapi-inference/template.yaml|resources.requests.memory: 'lots' is not a Kubernetes quantity"
    "images/templates/fastapi-inference/template.yaml|version: '1.0' is not a semantic version"
    "images/templates/fastapi-inference/template.yaml|default_image: 'ghcr.io/edgefleet/templates/fastapi-inference:1.0.0': the tag should be the version '1.0'"
    "images/templates/fastapi-inference/Dockerfile|EXPOSE: the final stage exposes nothing, but template.yaml has port 8000"
    "images/templates/static-web/Dockerfile|FROM: 'nginxinc/nginx-unprivileged:latest' uses the \`latest\` tag"
    "images/templates/static-web/Dockerfile|USER: 'root' is root"
    "images/templates/static-web/Dockerfile|HEALTHCHECK: does not call health_check_path '/healthz'"
    "images/templates/custom-image|README.md: missing"
    "images/templates/custom-image/Dockerfile|image_required is true, so the folder must not have a Dockerfile"
    "images/control-plane/Dockerfile|FROM: 'debian' has no tag"
    "images/control-plane/Dockerfile|RUN: downloads a file without verifying its checksum"
    "images/node-agent/Dockerfile|USER: 1000 differs from runAsUser 65532"
    "images/node-agent/Dockerfile|RUN: \`cargo build\` without --locked"
)
missing=0
for entry in "${expected[@]}"; do
    file=${entry%%|*}
    message=${entry#*|}
    if ! grep -F -- "$file: " <<<"$out" | grep -qF -- "$message"; then
        echo "check-images: self-test: not reported: $file: ... $message" >&2
        missing=1
    fi
done
if [[ $missing == 1 ]]; then
    echo "$out" >&2
    fail "self-test: check_images.py missed problems in a broken copy"
fi
say "self-test: ${#expected[@]} injected problems reported, exit status non-zero"
say "all checks passed"
