#!/usr/bin/env bash
# Checks the Terraform code in modules/ and terraform/ (run by scripts/test.sh; needs no Terraform registry:
# providers come from a local filesystem mirror):
#
#  1. `terraform fmt -check -recursive modules terraform`;
#  2. scripts/check_terraform.py (python-hcl2, installed here if missing): variables typed and described,
#     outputs described, READMEs and versions.tf present, the common cluster output contract on every cluster
#     module and region-cluster stack, references and module calls consistent, every validation rule
#     evaluated with sample inputs;
#  3. a self-test that the structural check fails on a broken copy;
#  4. `terraform init -backend=false` + `terraform validate` of modules/local/cluster,
#     terraform/region-cluster/local, every modules/aws/* module and terraform/region-cluster/aws, with the real
#     hashicorp/aws provider from the filesystem mirror of scripts/build-providers.sh when
#     $EDGEFLEET_TERRAFORM_PROVIDER_MIRROR names it (scripts/test-cloud.sh), else the first two only;
#  5. a real apply / output -json / destroy of terraform/region-cluster/local with local state: it starts
#     a local cluster (kube-cluster from $CARGO_TARGET_DIR or target/, or a stand-in script when it is not built),
#     checks the output contract, passes the same cluster through the `existing` mode, checks that an
#     invalid cluster name fails the apply, and checks that destroy stops the cluster.
#
# The tencentcloud modules are only checked statically (steps 1-3): the Go module proxy serves no version of their
# provider. The AWS modules are also applied against an emulated AWS (tests/e2e/tests/aws_emulated.rs). Set CHECK_TERRAFORM_SKIP_APPLY=1 to skip step 5, CHECK_TERRAFORM_CLUSTER=<path> to use
# another kube-cluster binary (a path that does not exist selects the stand-in).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { echo "check-terraform: $*"; }
fail() {
    echo "check-terraform: FAILED: $*" >&2
    exit 1
}

command -v terraform >/dev/null || fail "terraform is not on PATH"
command -v python3 >/dev/null || fail "python3 is not on PATH"

# A TF_CLI_CONFIG_FILE that names a missing file only produces warnings on every command.
if [[ -n ${TF_CLI_CONFIG_FILE:-} && ! -e ${TF_CLI_CONFIG_FILE} ]]; then
    export TF_CLI_CONFIG_FILE=/dev/null
fi
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1

work=$(mktemp -d -t check-terraform-XXXXXX)
cleanup() {
    # Stop any cluster a failed smoke test left behind (only ours: its pid file is in $work).
    for pidfile in "$work"/*/state/pid "$work"/*/*/state/pid; do
        [[ -s $pidfile ]] && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. formatting -------------------------------------------------------------------------------------
say "terraform fmt -check -recursive modules terraform"
if ! terraform fmt -check -recursive -diff -no-color modules terraform; then
    fail "files above are not formatted; run: terraform fmt -recursive modules terraform"
fi

# --- 2. structural checks ------------------------------------------------------------------------------
HCL2_VERSION=7.3.1
LARK_VERSION=1.3.1
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('python-hcl2') != '$HCL2_VERSION')" 2>/dev/null; then
    say "installing python-hcl2==$HCL2_VERSION"
    pip_args=(install --quiet --disable-pip-version-check "python-hcl2==$HCL2_VERSION" "lark==$LARK_VERSION")
    python3 -m pip "${pip_args[@]}" 2>/dev/null ||
        python3 -m pip "${pip_args[@]}" --break-system-packages ||
        fail "could not install python-hcl2 with pip"
fi
say "scripts/check_terraform.py"
python3 scripts/check_terraform.py "$repo" || fail "structural checks (listed above)"

# --- 3. the structural check can fail ------------------------------------------------------------------
mkdir -p "$work/selftest/scripts"
cp -r modules terraform "$work/selftest/"
cp scripts/check_terraform.py "$work/selftest/scripts/"
python3 - "$work/selftest/modules/aws/s3/variables.tf" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
broken = text.replace('  description = "Keep old versions of objects (recommended for Terraform state)."\n', "", 1)
assert broken != text, "self-test: the description to remove is not in " + path
open(path, "w").write(broken)
EOF
if out=$(python3 "$work/selftest/scripts/check_terraform.py" --no-terraform "$work/selftest" 2>&1); then
    fail "self-test: check_terraform.py accepted a variable without a description"
fi
grep -q 'variables.tf: \[variable\] variable "versioning" has no description' <<<"$out" ||
    fail "self-test: unexpected report: $out"
say "self-test: a missing description is reported"

# --- 4. init + validate with the real providers ---------------------------------------------------------
# Providers come only from the filesystem mirror scripts/build-providers.sh builds, as in an offline installation.
# Building that takes about 50 minutes cold, so without it (EDGEFLEET_TERRAFORM_PROVIDER_MIRROR unset, as in
# scripts/test.sh on a machine that has not built it) only the provider-free code is validated here, and
# scripts/test-cloud.sh runs this script again with the mirror.
mirror=${EDGEFLEET_TERRAFORM_PROVIDER_MIRROR:-}
with_provider=(modules/aws/* terraform/region-cluster/aws)
if [[ -z $mirror ]]; then
    for dir in "${with_provider[@]}"; do
        say "not validated in this run (needs the provider mirror; scripts/test-cloud.sh does it): $dir"
    done
    with_provider=()
    mirror=$work/empty-mirror
    mkdir -p "$mirror"
fi
cat >"$work/mirror.tfrc" <<TFRC
provider_installation {
  filesystem_mirror {
    path = "$mirror"
  }
}
TFRC
cp -r modules terraform "$work/"
for dir in modules/local/cluster terraform/region-cluster/local "${with_provider[@]}"; do
    say "terraform init -backend=false && terraform validate: $dir"
    (
        cd "$work/$dir"
        TF_CLI_CONFIG_FILE=$work/mirror.tfrc terraform init -backend=false -no-color >"$work/init.log" 2>&1 ||
            { cat "$work/init.log" >&2; exit 1; }
        TF_CLI_CONFIG_FILE=$work/mirror.tfrc terraform validate -no-color
    ) || fail "validate $dir"
done
# The Go module proxy serves no version of the tencentcloud provider: those modules stay checked by steps 1-3.
for dir in modules/tencentcloud/* terraform/region-cluster/tencentcloud terraform/management; do
    say "not validated (no tencentcloud provider can be built here): $dir"
done

# --- 5. apply / output / destroy of the local region stack ---------------------------------------------
if [[ ${CHECK_TERRAFORM_SKIP_APPLY:-0} == 1 ]]; then
    say "skipping the apply smoke test (CHECK_TERRAFORM_SKIP_APPLY=1)"
    say "all checks passed"
    exit 0
fi

cluster_bin=${CHECK_TERRAFORM_CLUSTER:-${CARGO_TARGET_DIR:-$repo/target}/debug/kube-cluster}
real_cluster=1
if [[ ! -x $cluster_bin ]]; then
    real_cluster=0
    cluster_bin=$work/fake-cluster
    # Stand-in: writes a kubeconfig and the URL like kube-cluster does, then waits for SIGTERM.
    cat >"$cluster_bin" <<'EOF'
#!/bin/sh
kubeconfig="" portfile=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kubeconfig) kubeconfig=$2; shift ;;
        --port-file) portfile=$2; shift ;;
    esac
    shift
done
ca=$(printf -- '-----BEGIN CERTIFICATE-----\nc3RhbmQtaW4=\n-----END CERTIFICATE-----\n' | base64 -w0)
cat >"$kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: kube-cluster
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: "$ca"}
users:
- name: kube-cluster
  user: {client-certificate-data: "$ca", client-key-data: c3RhbmQtaW4=}
contexts:
- name: kube-cluster
  context: {cluster: kube-cluster, user: kube-cluster, namespace: default}
current-context: kube-cluster
KUBECONFIG
printf 'https://127.0.0.1:6443' >"$portfile"
echo "listening on https://127.0.0.1:6443"
trap 'exit 0' TERM INT
while :; do sleep 1; done
EOF
    chmod +x "$cluster_bin"
    say "no kube-cluster at ${CHECK_TERRAFORM_CLUSTER:-target/debug/kube-cluster}; using a stand-in (cargo build -p kube-cluster builds the real one)"
fi

# A copy of the stack with local state instead of the S3 backend (no S3 server needed here).
stack_copy() {
    mkdir -p "$work/$1"
    cp -r modules terraform "$work/$1/"
    printf 'terraform {\n  backend "local" {}\n}\n' >"$work/$1/terraform/region-cluster/local/backend_override.tf"
    (cd "$work/$1/terraform/region-cluster/local" && terraform init -no-color >/dev/null) || fail "init of the $1 copy"
    echo "$work/$1/terraform/region-cluster/local"
}

local_stack=$(stack_copy local)
state_dir=$work/local/state
tf_local() { (cd "$local_stack" && terraform "$@" -no-color -var cluster_name=smoke -var "cluster_bin=$cluster_bin" -var "state_dir=$state_dir"); }

say "apply (local mode): invalid cluster name must fail"
if out=$(cd "$local_stack" && terraform apply -auto-approve -no-color -var cluster_name=Bad_Name -var "cluster_bin=$cluster_bin" 2>&1); then
    fail "apply with cluster_name=Bad_Name succeeded"
fi
grep -q 'Invalid cluster name "Bad_Name"' <<<"$out" || fail "unexpected error for Bad_Name: $out"

say "apply (local mode): $cluster_bin"
tf_local apply -auto-approve >"$work/apply.log" 2>&1 || { cat "$work/apply.log"; fail "apply"; }
(cd "$local_stack" && terraform output -json -no-color) >"$work/local-outputs.json" || fail "output -json"
pid=$(cat "$state_dir/pid")
kill -0 "$pid" 2>/dev/null || fail "the cluster (pid $pid) is not running after terraform exited"

python3 - "$work/local-outputs.json" "$state_dir" "$work/kubeconfig" <<'EOF' || fail "output contract"
import base64, json, sys
outputs = {k: v["value"] for k, v in json.load(open(sys.argv[1])).items()}
sensitive = {k for k, v in json.load(open(sys.argv[1])).items() if v["sensitive"]}
state_dir = sys.argv[2]
url = open(f"{state_dir}/url").read().strip()
assert outputs["cluster_name"] == "smoke", outputs["cluster_name"]
assert outputs["api_endpoint"] == url and url.startswith("https://"), (outputs["api_endpoint"], url)
assert outputs["ca_certificate"].startswith("-----BEGIN CERTIFICATE-----"), outputs["ca_certificate"]
creds = outputs["credentials"]
assert set(creds) == {"type", "token", "client_certificate", "client_key", "exec"}, creds.keys()
assert creds["type"] == "client_certificate" and creds["client_certificate"] and creds["client_key"], creds
assert {"credentials", "kubeconfig"} <= sensitive, sensitive
kubeconfig = outputs["kubeconfig"]
assert "current-context" in kubeconfig and url in kubeconfig, kubeconfig
assert base64.b64encode(outputs["ca_certificate"].encode()).decode() in kubeconfig
assert outputs["mode"] == "local" and outputs["cluster_pid"] > 0, outputs
open(sys.argv[3], "w").write(kubeconfig)
print("check-terraform: output contract OK:", outputs["api_endpoint"], "credentials.type =", creds["type"])
EOF

if [[ $real_cluster == 1 ]] && command -v kubectl >/dev/null; then
    say "kubectl get nodes with the kubeconfig output"
    KUBECONFIG=$work/kubeconfig kubectl get nodes -o name || fail "kubectl with the kubeconfig output"
fi

say "plan after apply must show no changes"
tf_local plan -detailed-exitcode >"$work/plan.log" 2>&1 || { cat "$work/plan.log"; fail "plan after apply is not empty"; }

say "apply (existing mode) with the local cluster's kubeconfig"
existing_stack=$(stack_copy existing)
(cd "$existing_stack" && terraform apply -auto-approve -no-color -var cluster_name=passthrough \
    -var "kubeconfig_path=$state_dir/kubeconfig" >"$work/apply-existing.log" 2>&1) ||
    { cat "$work/apply-existing.log"; fail "apply (existing mode)"; }
(cd "$existing_stack" && terraform output -json -no-color) >"$work/existing-outputs.json"
python3 - "$work/local-outputs.json" "$work/existing-outputs.json" <<'EOF' || fail "existing-mode contract"
import json, sys
local = {k: v["value"] for k, v in json.load(open(sys.argv[1])).items()}
ext = {k: v["value"] for k, v in json.load(open(sys.argv[2])).items()}
assert ext["mode"] == "existing" and ext["cluster_name"] == "passthrough", ext
for key in ("api_endpoint", "ca_certificate", "credentials"):
    assert ext[key] == local[key], key
EOF
(cd "$existing_stack" && terraform destroy -auto-approve -no-color -var cluster_name=passthrough \
    -var "kubeconfig_path=$state_dir/kubeconfig" >"$work/destroy-existing.log" 2>&1) ||
    { cat "$work/destroy-existing.log"; fail "destroy (existing mode)"; }
kill -0 "$pid" 2>/dev/null || fail "destroying the existing-mode stack stopped the cluster it passed through"

say "destroy (local mode)"
tf_local destroy -auto-approve >"$work/destroy.log" 2>&1 || { cat "$work/destroy.log"; fail "destroy"; }
for _ in $(seq 50); do
    [[ -r /proc/$pid/stat ]] && [[ $(sed -e 's/^.*) //' "/proc/$pid/stat" | cut -c1) != Z ]] || break
    sleep 0.1
done
if [[ -r /proc/$pid/stat ]] && [[ $(sed -e 's/^.*) //' "/proc/$pid/stat" | cut -c1) != Z ]]; then
    fail "the cluster (pid $pid) still runs after destroy"
fi
[[ ! -e $state_dir ]] || fail "destroy left $state_dir behind"
[[ $(cd "$local_stack" && terraform state list | wc -l) == 0 ]] || fail "state not empty after destroy"

say "all checks passed"
