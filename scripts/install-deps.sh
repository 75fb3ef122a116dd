#!/usr/bin/env bash
# Installs the system packages the tests and the local quick start need (Debian/Ubuntu); safe to rerun.
set -euo pipefail

missing=()

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -qx 'install ok installed'
}

# Any installed PostgreSQL major version will do: the test harness finds its initdb and postgres.
if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    missing+=(postgresql)
fi
# chromium and chromium-driver run the console's browser tests; fonts-noto-cjk lets it draw the console's Chinese.
for package in clickhouse-server clickhouse-client curl ca-certificates openssl chromium chromium-driver \
    fonts-noto-cjk; do
    is_installed "$package" || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all system packages are present"
else
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo)
    else
        echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    # sudo drops the environment, so the non-interactive frontend is passed through env.
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# These come preinstalled on our machines and cannot be downloaded here, so only report them. Go builds the
# real Kubernetes control plane the tests run (scripts/build-kube.sh) and Helm (scripts/build-helm.sh).
for tool in terraform kubectl go; do
    if ! command -v "$tool" >/dev/null; then
        echo "install-deps: WARNING: \`$tool\` is not on PATH; tests that use it will fail." \
            "Install it by hand (it is not available from the distribution's packages)." >&2
    fi
done
