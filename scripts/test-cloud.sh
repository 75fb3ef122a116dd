#!/usr/bin/env bash
# The cloud-provider stage: the AWS Terraform code checked by the real hashicorp/aws provider. Builds the provider
# from its Go module into a filesystem mirror (scripts/build-providers.sh: about 50 minutes cold on 2 cores, then
# cached), installs moto (the emulated AWS) from PyPI, then runs `terraform validate` of every AWS module and stack
# (scripts/check-terraform.sh) and the tests that apply the AWS modules and drive the provisioner against moto.
# scripts/test.sh runs this stage itself when the provider is already cached; set EDGEFLEET_CLOUD_CHECKS=1 there
# to build it first. Needs what scripts/test.sh builds (the workspace's binaries, Kubernetes).
set -euo pipefail
cd "$(dirname "$0")/.."

EDGEFLEET_TERRAFORM_PROVIDER_MIRROR=$(bash scripts/build-providers.sh)
source scripts/pypi-tool.sh
EDGEFLEET_MOTO_PROXY=$(pypi_tool moto 5.2.5 'moto[server]')/bin/moto_proxy
export EDGEFLEET_TERRAFORM_PROVIDER_MIRROR EDGEFLEET_MOTO_PROXY
CHECK_TERRAFORM_SKIP_APPLY=1 bash scripts/check-terraform.sh
cargo test -p e2e --locked --test aws_emulated -- --ignored
echo "test-cloud.sh: the cloud-provider stage passed"
