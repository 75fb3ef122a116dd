#!/usr/bin/env bash
# Builds the Terraform providers the cloud modules use from their Go modules (pinned in tests/terraform-providers)
# into a cache outside the clone, laid out as a Terraform filesystem mirror, and prints the mirror's directory on
# stdout. Terraform takes providers from it with a CLI configuration such as
#
#   provider_installation { filesystem_mirror { path = "<printed directory>" } }
#
# which is what the tests and the provisioner's `provisioning.provider_mirror` setting use, online or not.
# Only the first run on a machine builds; later runs print the cached directory at once.
#
# hashicorp/aws: built from the module's main branch at the commit go.mod pins. Its releases are tagged v6.x.y
# while its go.mod says `module github.com/hashicorp/terraform-provider-aws` (no /v6), so the Go module proxy
# serves it only by commit, and the version is not in the build: AWS_VERSION below is the release that commit's
# CHANGELOG is preparing, and both the binary and the mirror carry it.
# tencentcloudstack/tencentcloud is not here: the module proxy refuses every version of
# github.com/tencentcloudstack/terraform-provider-tencentcloud (docs/provisioning.md).
#
# A cold build takes about 50 minutes and 9 GiB of memory on 2 cores (docs/provisioning.md), too long for a cold CI
# run, so scripts/test.sh runs the stage that needs it (scripts/test-cloud.sh) only when it is cached.
#
# Usage: build-providers.sh [--cached-only]   (--cached-only: print the mirror if built, else exit 3)
# Environment: EDGEFLEET_CACHE_DIR (default ~/.cache/edgefleet). Progress goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/lib/cached-go-build.sh"
cached_go_build_args "$@"
AWS_VERSION=6.48.0
platform=$(go env GOOS)_$(go env GOARCH)
aws_binary=registry.terraform.io/hashicorp/aws/$AWS_VERSION/$platform/terraform-provider-aws_v$AWS_VERSION

is_complete() {
    [[ -x $1/$aws_binary ]]
}

build_into() {
    mkdir -p "$(dirname "$1/$aws_binary")"
    GOFLAGS=-mod=readonly go build -trimpath \
        -ldflags="-s -w -X github.com/hashicorp/terraform-provider-aws/version.ProviderVersion=$AWS_VERSION" \
        -o "$1/$aws_binary" github.com/hashicorp/terraform-provider-aws
}

cached_go_build terraform-providers "$repo/tests/terraform-providers"
echo "$built_dir"
