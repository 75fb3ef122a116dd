#!/usr/bin/env bash
# The main job: starts a local control plane (PostgreSQL, ClickHouse), a local region whose cluster is the
# Kubernetes API emulator, bootstraps an agent through the real token flow, and deploys a sample model demo.
# Extra arguments go to the `devstack` program (e.g. `--once`, `--kubeconfig ~/.kube/config`, `--api-port`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --workspace --bins --locked
exec "${CARGO_TARGET_DIR:-target}/debug/devstack" "$@"
