#!/usr/bin/env bash
# Builds the real Kubernetes control plane the tests and the quick start run (kube-apiserver,
# kube-controller-manager, kube-scheduler and etcd) from the Go module in tests/kube-control-plane, into a cache
# outside the clone keyed by that module's files, this script and the Go version, and prints the directory holding the
# binaries on stdout. Only the first run on a machine builds; later runs print the cached directory at once.
#
# Environment: EDGEFLEET_CACHE_DIR (default ~/.cache/edgefleet). Progress goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
module=$repo/tests/kube-control-plane
cache=${EDGEFLEET_CACHE_DIR:-$HOME/.cache/edgefleet}/kube
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler)

if ! command -v go >/dev/null; then
    echo "build-kube: \`go\` is not on PATH; the Kubernetes control plane is built from Go modules (Go >= 1.26)" >&2
    exit 1
fi

key=$(
    go version
    # This script too: its build flags are part of what is built.
    sha256sum <"$0"
    cd "$module"
    find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z | xargs -0 sha256sum
)
key=$(sha256sum <<<"$key" | cut -c1-16)
dir=$cache/$key

complete() {
    local binary
    for binary in "${binaries[@]}"; do
        [[ -x $dir/$binary ]] || return 1
    done
}

if complete; then
    echo "$dir"
    exit 0
fi

mkdir -p "$cache"
# One build at a time per machine: test processes started together wait for the first one's result.
exec 9>"$cache/.lock"
flock 9
if complete; then
    echo "$dir"
    exit 0
fi

echo "build-kube: building the Kubernetes control plane from Go modules into $dir" >&2
echo "build-kube: a cold build takes about 20 minutes on 2 cores; it is cached for every later run" >&2
staging=$(mktemp -d "$cache/.build-XXXXXX")
started=$(date +%s)
# Kubernetes learns its own version from the linker, as its release build does; without it the API server
# reports v0.0.0 to clients.
version=$(cd "$module" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
IFS=. read -r major minor _ <<<"${version#v}"
ldflags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $package.gitVersion=$version -X $package.gitMajor=$major -X $package.gitMinor=$minor"
    ldflags+=" -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
done
(
    cd "$module"
    # -mod=readonly: go.sum pins every module; a build never edits the module files.
    GOFLAGS=-mod=readonly go build -trimpath -ldflags="$ldflags" -o "$staging/" \
        ./cmd/etcd \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler
) >&2 &
build=$!
while kill -0 "$build" 2>/dev/null; do
    for _ in $(seq 30); do
        kill -0 "$build" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$build" 2>/dev/null; then
        echo "build-kube: still building ($(($(date +%s) - started)) s)" >&2
    fi
done
if ! wait "$build"; then
    rm -rf "$staging"
    echo "build-kube: the build failed (output above)" >&2
    exit 1
fi
rm -rf "$dir"
mv "$staging" "$dir"
echo "build-kube: built in $(($(date +%s) - started)) s" >&2
# Builds for other keys (an older pin or Go version) are about 300 MB each: keep only this one.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build-*' -exec rm -rf {} +
echo "$dir"
