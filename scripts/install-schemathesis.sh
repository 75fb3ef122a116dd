#!/usr/bin/env bash
# Installs schemathesis (from PyPI) into a virtualenv cached outside the clone and prints the path of its `st`
# command. The API fuzz test (tests/e2e/tests/api_fuzz.rs) runs it.
set -euo pipefail

version=4.32.5
tools=${EDGEFLEET_CACHE_DIR:-$HOME/.cache/edgefleet}/tools/schemathesis-$version
if [[ ! -e $tools/.complete ]]; then
    echo "install-schemathesis: installing schemathesis $version into $tools" >&2
    mkdir -p "$(dirname "$tools")"
    exec 9>"$tools.lock"
    flock 9
    if [[ ! -e $tools/.complete ]]; then
        # Created in place: a virtualenv's scripts name its own path, so it cannot be moved afterwards.
        rm -rf "$tools"
        python3 -m venv "$tools"
        if ! "$tools/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" >&2; then
            rm -rf "$tools"
            exit 1
        fi
        touch "$tools/.complete"
    fi
fi
echo "$tools/bin/st"
