#!/usr/bin/env bash
# The whole test suite: installs missing system packages, builds every binary (the end-to-end tests run them
# as separate processes), then runs every test and the static checks.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# The real Kubernetes control plane the tests run (cached outside the clone; the first build takes a while).
EDGEFLEET_KUBE_BIN_DIR=$(bash scripts/build-kube.sh)
export EDGEFLEET_KUBE_BIN_DIR
# A one-shot build gains nothing from incremental caches, and they take gigabytes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast
bash scripts/check-terraform.sh
bash scripts/check-images.sh
bash scripts/check-deps.sh
bash scripts/fuzz.sh
echo "test.sh: all tests passed"
