# Sourced by the scripts that build Go programs the tests run (build-kube.sh, build-providers.sh, build-helm.sh)
# into a cache outside the clone. `cached_go_build NAME MODULE_DIR` sets `built_dir` to
# $EDGEFLEET_CACHE_DIR/NAME/<key>, where the key hashes `go version`, the caller's `build_into` and the module's Go files,
# go.mod and go.sum; it runs the caller's `build_into STAGING` (in MODULE_DIR) only when `is_complete DIR` says the
# cached directory is not whole (with `cached_only=1` it returns 3 instead of building; `cached_go_build_args "$@"`
# sets it from a caller's `--cached-only` flag).
# One build at a time per machine (concurrent callers wait for the first one's result); builds for other keys are
# removed afterwards, since each is hundreds of megabytes. Progress goes to stderr.

cached_go_build() {
    local name=$1 module=$2
    local cache=${EDGEFLEET_CACHE_DIR:-$HOME/.cache/edgefleet}/$name
    if ! command -v go >/dev/null; then
        echo "$name: \`go\` is not on PATH; this is built from Go modules (Go >= 1.26)" >&2
        return 1
    fi
    local key
    key=$(
        go version
        # The caller's build function too: its flags are part of what is built (its comments and usage are not).
        declare -f build_into
        cd "$module"
        find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z | xargs -0 sha256sum
    )
    key=$(sha256sum <<<"$key" | cut -c1-16)
    built_dir=$cache/$key
    is_complete "$built_dir" && return 0
    if [[ ${cached_only:-0} == 1 ]]; then
        echo "$name: not built yet for this key ($built_dir)" >&2
        return 3
    fi

    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    if is_complete "$built_dir"; then
        exec 9>&-
        return 0
    fi
    echo "$name: building into $built_dir" >&2
    local staging started build
    staging=$(mktemp -d "$cache/.build-XXXXXX")
    started=$(date +%s)
    (cd "$module" && build_into "$staging") >&2 &
    build=$!
    while kill -0 "$build" 2>/dev/null; do
        for _ in $(seq 30); do
            kill -0 "$build" 2>/dev/null || break
            sleep 1
        done
        if kill -0 "$build" 2>/dev/null; then
            echo "$name: still building ($(($(date +%s) - started)) s)" >&2
        fi
    done
    if ! wait "$build"; then
        rm -rf "$staging"
        exec 9>&-
        echo "$name: the build failed (output above)" >&2
        return 1
    fi
    rm -rf "$built_dir"
    mv "$staging" "$built_dir"
    echo "$name: built in $(($(date +%s) - started)) s" >&2
    find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build-*' -exec rm -rf {} +
    exec 9>&-
}

# The calling script's arguments: none, or `--cached-only` (print the directory if built, else exit 3).
cached_go_build_args() {
    cached_only=0
    case ${1:-} in
        --cached-only) cached_only=1 ;;
        "") ;;
        *)
            echo "usage: $0 [--cached-only]" >&2
            exit 2
            ;;
    esac
}

