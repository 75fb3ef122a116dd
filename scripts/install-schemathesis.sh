#!/usr/bin/env bash
# Installs schemathesis (from PyPI) into a virtualenv cached outside the clone and prints the path of its `st`
# command. The API fuzz test (tests/e2e/tests/api_fuzz.rs) runs it.
set -euo pipefail
source "$(dirname "$0")/pypi-tool.sh"
echo "$(pypi_tool schemathesis 4.32.5 schemathesis)/bin/st"
