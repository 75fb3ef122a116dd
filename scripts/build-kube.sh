#!/usr/bin/env bash
# Builds the real Kubernetes control plane the tests and the quick start run (kube-apiserver,
# kube-controller-manager, kube-scheduler and etcd) from the Go module in tests/kube-control-plane, into a cache
# outside the clone keyed by that module's files, this script and the Go version, and prints the directory holding the
# binaries on stdout. Only the first run on a machine builds (about 15 minutes cold on 2 cores); later runs print
# the cached directory at once.
#
# Usage: build-kube.sh [--cached-only]   (--cached-only: print the directory if built, else exit 3)
# Environment: EDGEFLEET_CACHE_DIR (default ~/.cache/edgefleet). Progress goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/lib/cached-go-build.sh"
cached_go_build_args "$@"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler)

is_complete() {
    local binary
    for binary in "${binaries[@]}"; do
        [[ -x $1/$binary ]] || return 1
    done
}

build_into() {
    # Kubernetes learns its own version from the linker, as its release build does; without it the API server
    # reports v0.0.0 to clients.
    local version major minor ldflags package
    version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
    IFS=. read -r major minor _ <<<"${version#v}"
    ldflags="-s -w"
    for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $package.gitVersion=$version -X $package.gitMajor=$major -X $package.gitMinor=$minor"
        ldflags+=" -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
    done
    # -mod=readonly: go.sum pins every module; a build never edits the module files.
    GOFLAGS=-mod=readonly go build -trimpath -ldflags="$ldflags" -o "$1/" \
        ./cmd/etcd \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler
}

cached_go_build kube "$repo/tests/kube-control-plane"
echo "$built_dir"
