#!/usr/bin/env bash
# The main job: starts a local control plane (PostgreSQL, ClickHouse, S3), a local region whose cluster is a
# real Kubernetes control plane with simulated nodes (provisioned through Terraform), bootstraps an agent
# through the real token flow, and deploys a sample model demo.
# Extra arguments go to the `devstack` program (e.g. `--once`, `--kubeconfig ~/.kube/config`, `--api-port`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# The first run on a machine builds Kubernetes from its Go modules (progress is printed; cached afterwards).
EDGEFLEET_KUBE_BIN_DIR=$(bash scripts/build-kube.sh)
export EDGEFLEET_KUBE_BIN_DIR
cargo build --workspace --bins --locked
exec "${CARGO_TARGET_DIR:-target}/debug/devstack" "$@"
