#!/usr/bin/env bash
# Builds Helm (the `helm` command of helm.sh/helm/v4, pinned in tests/helm) into a cache outside the clone keyed by
# that module's files, this script and the Go version, and prints the directory holding `helm` on stdout. The chart
# tests (tests/e2e/tests/helm_charts.rs) lint and render deploy/charts/ with it. Only the first run on a machine
# builds (about 9 minutes cold on 2 cores, docs/deploy.md); later runs print the cached directory at once.
#
# Usage: build-helm.sh [--cached-only]   (--cached-only: print the directory if built, else exit 3)
# Environment: EDGEFLEET_CACHE_DIR (default ~/.cache/edgefleet). Progress goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/lib/cached-go-build.sh"
cached_go_build_args "$@"

is_complete() {
    [[ -x $1/helm ]]
}

build_into() {
    # Helm learns its version from the linker, as its release build does (its Makefile); without it `helm version`
    # says v4.3 and charts' `helm` version constraints are checked against that.
    local version
    version=$(go list -m -f '{{.Version}}' helm.sh/helm/v4)
    # -mod=readonly: go.sum pins every module; a build never edits the module files. CGO off, as Helm's releases.
    CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
        -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
        -o "$1/" helm.sh/helm/v4/cmd/helm
}

cached_go_build helm "$repo/tests/helm"
echo "$built_dir"
