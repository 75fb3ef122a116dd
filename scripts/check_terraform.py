#!/usr/bin/env python3
"""Static checks of the Terraform modules (modules/) and root stacks (terraform/).

Cloud providers cannot be downloaded on our machines, so `terraform validate` cannot run on the cloud modules.
This script checks what can be checked without them, parsing the HCL with python-hcl2:

structure
  * every variable has a `type` and a non-empty `description`; every output has a non-empty `description`;
  * every module has README.md and versions.tf with `required_version`; every module and stack declares each
    provider its resources use in `required_providers` with a version constraint;
  * every root stack has `backend "s3" {}` (partial configuration), and no provider block or variable holds
    credentials (they come from the environment only);
  * the cluster modules and the region-cluster stacks expose the common output contract (cluster_name,
    api_endpoint, ca_certificate, credentials, kubeconfig), with credentials and kubeconfig sensitive;
  * each README names every variable and output of its module (so the tables stay complete).
references
  * every var.X, local.X, module.X(.output), resource and data source reference is declared;
  * every module call points at an existing directory, passes only variables the callee declares and all
    variables the callee requires.
validations (needs `terraform` on PATH, works offline; skipped with --no-terraform)
  * each module's and stack's variables.tf alone is planned with sample values, which evaluates every
    validation rule (a rule that errors instead of returning false fails here), and with an invalid cluster
    name, which must be rejected with a clear message.

Every problem is printed as `path: [check] message`; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import hcl2
except ImportError:  # pragma: no cover - the shell wrapper installs it
    sys.exit("check_terraform.py: python-hcl2 is missing (pip install 'python-hcl2==7.3.1')")

CONTRACT = ["cluster_name", "api_endpoint", "ca_certificate", "credentials", "kubeconfig"]
SENSITIVE_CONTRACT = ["credentials", "kubeconfig"]
# Modules that create a cluster and must produce the contract. New cloud cluster modules go here.
CLUSTER_MODULES = ["modules/tencentcloud/tke", "modules/aws/eks", "modules/local/cluster"]
# Root stacks that must re-export it: every terraform/region-cluster/<provider>, and the management stack.
CONTRACT_STACK_GLOBS = ["terraform/region-cluster/*", "terraform/management"]

MODULE_META_ARGS = {"source", "version", "count", "for_each", "depends_on", "providers"}
BUILTIN_PROVIDERS = {"terraform"}
CREDENTIAL_NAME = re.compile(r"(secret|password|passwd|access_key|token|credential)", re.I)
PROVIDER_CREDENTIAL_ATTRS = {
    "secret_id", "secret_key", "security_token", "access_key", "token", "password", "shared_credentials_files",
}

IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
RE_VAR = re.compile(rf"(?<![\w.])var\.({IDENT})")
RE_LOCAL = re.compile(rf"(?<![\w.])local\.({IDENT})")
RE_MODULE = re.compile(rf"(?<![\w.])module\.({IDENT})(?:\[[^\]]*\])?(?:\.({IDENT}))?")
RE_RESOURCE = re.compile(rf"(?<![\w.])(data\.)?((?:aws|tencentcloud|terraform)_[a-z0-9_]+)\.({IDENT})")


class Problems:
    def __init__(self, root: Path):
        self.root = root
        self.items: list[str] = []

    def add(self, path: Path, check: str, message: str) -> None:
        try:
            shown = path.relative_to(self.root)
        except ValueError:
            shown = path
        self.items.append(f"{shown}: [{check}] {message}")


class Config:
    """One Terraform directory (module or root stack), merged over its .tf files."""

    def __init__(self, directory: Path, problems: Problems):
        self.dir = directory
        self.variables: dict[str, tuple[Path, dict]] = {}
        self.outputs: dict[str, tuple[Path, dict]] = {}
        self.locals: set[str] = set()
        self.resources: set[str] = set()
        self.data: set[str] = set()
        self.modules: dict[str, tuple[Path, dict]] = {}
        self.terraform_blocks: list[tuple[Path, dict]] = []
        self.providers: list[tuple[Path, str, dict]] = []
        self.expressions: list[tuple[Path, str]] = []
        for tf in sorted(directory.glob("*.tf")):
            try:
                with tf.open() as handle:
                    doc = hcl2.load(handle)
            except Exception as error:  # noqa: BLE001 - any parse error is a finding
                problems.add(tf, "parse", f"cannot parse: {error}")
                continue
            for block in doc.get("variable", []):
                for name, body in block.items():
                    self.variables[name] = (tf, body)
            for block in doc.get("output", []):
                for name, body in block.items():
                    self.outputs[name] = (tf, body)
            for block in doc.get("locals", []):
                self.locals.update(block.keys())
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    for name in named:
                        self.resources.add(f"{rtype}.{name}")
            for block in doc.get("data", []):
                for dtype, named in block.items():
                    for name in named:
                        self.data.add(f"{dtype}.{name}")
            for block in doc.get("module", []):
                for name, body in block.items():
                    self.modules[name] = (tf, body)
            for block in doc.get("terraform", []):
                self.terraform_blocks.append((tf, block))
            for block in doc.get("provider", []):
                for name, body in block.items():
                    self.providers.append((tf, name, body))
            self._collect_expressions(tf, doc)

    def _collect_expressions(self, tf: Path, node, key: str | None = None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                self._collect_expressions(tf, v, k)
        elif isinstance(node, list):
            for v in node:
                self._collect_expressions(tf, v, key)
        elif isinstance(node, str) and "${" in node and key != "description":
            self.expressions.append((tf, node))

    @property
    def is_empty(self) -> bool:
        return not any(self.dir.glob("*.tf"))

    def used_providers(self) -> set[str]:
        return {r.split("_", 1)[0] for r in self.resources | self.data}

    def required_providers(self) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for _, block in self.terraform_blocks:
            for entry in block.get("required_providers", []):
                for name, spec in entry.items():
                    found[name] = spec if isinstance(spec, dict) else {"version": spec}
        return found

    def required_version(self) -> str | None:
        for _, block in self.terraform_blocks:
            if block.get("required_version"):
                return block["required_version"]
        return None


def check_structure(cfg: Config, kind: str, problems: Problems) -> None:
    for name, (tf, body) in cfg.variables.items():
        if "type" not in body:
            problems.add(tf, "variable", f'variable "{name}" has no type')
        if not str(body.get("description", "")).strip():
            problems.add(tf, "variable", f'variable "{name}" has no description')
    for name, (tf, body) in cfg.outputs.items():
        if not str(body.get("description", "")).strip():
            problems.add(tf, "output", f'output "{name}" has no description')

    versions = cfg.dir / "versions.tf"
    if not versions.is_file():
        problems.add(cfg.dir, "versions", "versions.tf is missing")
    if cfg.required_version() is None:
        problems.add(versions, "versions", "no terraform { required_version = ... }")
    required = cfg.required_providers()
    for provider in sorted(cfg.used_providers()):
        if provider in BUILTIN_PROVIDERS:
            continue
        spec = required.get(provider)
        if spec is None:
            problems.add(versions, "versions", f'provider "{provider}" is used but not in required_providers')
        elif not spec.get("version") or not spec.get("source"):
            problems.add(versions, "versions", f'provider "{provider}" needs a source and a version constraint')

    if kind == "module":
        readme = cfg.dir / "README.md"
        if not readme.is_file():
            problems.add(cfg.dir, "readme", "README.md is missing")
        else:
            check_readme(cfg, readme, problems)
        for tf, block in cfg.terraform_blocks:
            if block.get("backend"):
                problems.add(tf, "backend", "a module must not configure a backend")
    else:
        backends = [(tf, b["backend"]) for tf, b in cfg.terraform_blocks if b.get("backend")]
        if not backends:
            problems.add(cfg.dir, "backend", 'root stack has no backend "s3" {} block')
        for tf, backend in backends:
            for entry in backend:
                for btype, settings in entry.items():
                    if btype != "s3":
                        problems.add(tf, "backend", f'backend must be "s3", not "{btype}"')
                    elif settings:
                        problems.add(tf, "backend", 'backend "s3" must be empty (partial configuration given at init time)')
        readme = cfg.dir / "README.md"
        if readme.is_file():
            check_readme(cfg, readme, problems)
        else:
            problems.add(cfg.dir, "readme", "README.md is missing")

    for name, (tf, _) in cfg.variables.items():
        if CREDENTIAL_NAME.search(name):
            problems.add(tf, "credentials", f'variable "{name}" looks like a credential; credentials come from the environment only')
    for tf, name, body in cfg.providers:
        for attr in body:
            if attr in PROVIDER_CREDENTIAL_ATTRS:
                problems.add(tf, "credentials", f'provider "{name}" sets "{attr}"; credentials come from the environment only')


def check_readme(cfg: Config, readme: Path, problems: Problems) -> None:
    text = readme.read_text()
    for section in ("Inputs", "Outputs"):
        if not re.search(rf"^#+\s*{section}\b", text, re.M):
            problems.add(readme, "readme", f"no '{section}' section")
    for kind, names in (("variable", cfg.variables), ("output", cfg.outputs)):
        for name in names:
            if f"`{name}`" not in text:
                problems.add(readme, "readme", f'{kind} "{name}" is not documented (write it as `{name}`)')
    if not re.search(r"```(hcl|terraform|sh)", text):
        problems.add(readme, "readme", "no example (a ```hcl or ```sh block)")


def check_contract(cfg: Config, problems: Problems) -> None:
    for name in CONTRACT:
        if name not in cfg.outputs:
            problems.add(cfg.dir, "contract", f'output "{name}" of the cluster output contract is missing')
    for name in SENSITIVE_CONTRACT:
        if name in cfg.outputs:
            tf, body = cfg.outputs[name]
            if body.get("sensitive") is not True:
                problems.add(tf, "contract", f'output "{name}" must be sensitive = true')


def check_references(cfg: Config, configs: dict[Path, Config], problems: Problems) -> None:
    reported: set[tuple[Path, str]] = set()

    def report(tf: Path, message: str) -> None:
        if (tf, message) not in reported:
            reported.add((tf, message))
            problems.add(tf, "reference", message)

    for tf, expr in cfg.expressions:
        for name in RE_VAR.findall(expr):
            if name not in cfg.variables:
                report(tf, f"var.{name} is not declared")
        for name in RE_LOCAL.findall(expr):
            if name not in cfg.locals:
                report(tf, f"local.{name} is not declared")
        for name, attr in RE_MODULE.findall(expr):
            if name not in cfg.modules:
                report(tf, f"module.{name} is not declared")
                continue
            callee = resolve_module(cfg, name)
            if attr and callee is not None and callee in configs and attr not in configs[callee].outputs:
                report(tf, f"module.{name}.{attr}: {callee.name} has no output \"{attr}\"")
        for is_data, rtype, name in RE_RESOURCE.findall(expr):
            address = f"{rtype}.{name}"
            if is_data and address not in cfg.data:
                report(tf, f"data.{address} is not declared")
            elif not is_data and address not in cfg.resources:
                report(tf, f"{address} is not declared")

    for name, (tf, body) in cfg.modules.items():
        callee = resolve_module(cfg, name)
        if callee is None or not callee.is_dir() or not any(callee.glob("*.tf")):
            problems.add(tf, "module-call", f'module "{name}": source {body.get("source")!r} is not a local module directory')
            continue
        target = configs.get(callee) or Config(callee, problems)
        for arg in body:
            if arg not in MODULE_META_ARGS and arg not in target.variables:
                problems.add(tf, "module-call", f'module "{name}" passes "{arg}", which {body["source"]} does not declare')
        for var, (_, vbody) in target.variables.items():
            if "default" not in vbody and var not in body:
                problems.add(tf, "module-call", f'module "{name}" does not pass required variable "{var}" of {body["source"]}')


def resolve_module(cfg: Config, name: str) -> Path | None:
    source = cfg.modules[name][1].get("source", "")
    if not isinstance(source, str) or not source.startswith(("./", "../")):
        return None
    return (cfg.dir / source).resolve()


# Sample inputs for the validation smoke test: valid values for the variables that have no default.
SAMPLES_COMMON = {
    "cluster_name": "smoke-test",
    "name": "smoke-test",
    "bucket": "smoke-test-bucket",
    "vpc_cidr_block": "10.0.0.0/16",
    "allowed_cidrs": ["10.0.0.0/16"],
    "kubeconfig": None,
}
SAMPLES_TENCENTCLOUD = {
    "region": "ap-guangzhou",
    "availability_zones": ["ap-guangzhou-3", "ap-guangzhou-4"],
    "availability_zone": "ap-guangzhou-3",
    "vpc_id": "vpc-abcd1234",
    "subnet_id": "subnet-abcd1234",
    "subnet_ids": ["subnet-abcd1234", "subnet-efgh5678"],
    "route_table_ids": ["rtb-abcd1234"],
    "subnets": [
        {"name": "a", "availability_zone": "ap-guangzhou-3", "cidr_block": "10.0.0.0/20"},
        {"name": "b", "availability_zone": "ap-guangzhou-4", "cidr_block": "10.0.16.0/20"},
    ],
}
SAMPLES_AWS = {
    "region": "us-east-1",
    "availability_zones": ["us-east-1a", "us-east-1b"],
    "subnet_ids": ["subnet-0abc1234", "subnet-0def5678"],
}
SAMPLES_LOCAL = {"cluster_bin": "/bin/sh"}


def samples_for(cfg: Config) -> dict:
    parts = cfg.dir.parts
    values = dict(SAMPLES_COMMON)
    if "aws" in parts:
        values.update(SAMPLES_AWS)
    elif "local" in parts:
        values.update(SAMPLES_LOCAL)
    else:
        values.update(SAMPLES_TENCENTCLOUD)
    return values


def plan_variables(cfg: Config, tfvars: dict, workdir: Path) -> subprocess.CompletedProcess:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    shutil.copy(cfg.dir / "variables.tf", workdir / "variables.tf")
    (workdir / "smoke.auto.tfvars.json").write_text(json.dumps(tfvars))
    env = dict(os.environ, TF_IN_AUTOMATION="1", TF_INPUT="0", NO_COLOR="1")
    env.setdefault("TF_CLI_CONFIG_FILE", "/dev/null")
    if not Path(env["TF_CLI_CONFIG_FILE"]).exists():
        env["TF_CLI_CONFIG_FILE"] = "/dev/null"
    return subprocess.run(
        ["terraform", "plan", "-input=false", "-lock=false", "-no-color"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
    )


def check_validations(cfg: Config, problems: Problems, scratch: Path) -> None:
    variables_tf = cfg.dir / "variables.tf"
    if not variables_tf.is_file():
        return
    samples = samples_for(cfg)
    tfvars = {}
    for name, (_, body) in cfg.variables.items():
        if "default" in body:
            continue
        if name not in samples:
            problems.add(variables_tf, "validation", f'no sample value for required variable "{name}" in check_terraform.py')
            return
        tfvars[name] = samples[name]
    # The local cluster module needs one of its optional variables set (cluster_bin or kubeconfig_path).
    for name, value in SAMPLES_LOCAL.items():
        if name in cfg.variables and "local" in cfg.dir.parts and name not in tfvars:
            tfvars[name] = value
    workdir = scratch / str(abs(hash(cfg.dir)))
    result = plan_variables(cfg, tfvars, workdir)
    if result.returncode != 0:
        problems.add(variables_tf, "validation", "plan with valid sample inputs failed:\n" + indent(result.stderr or result.stdout))
        return
    name_var = "cluster_name" if "cluster_name" in cfg.variables else None
    if name_var is None and "local" in cfg.dir.parts and "name" in cfg.variables:
        name_var = "name"
    if name_var:
        bad = dict(tfvars, **{name_var: "Bad_Name"})
        result = plan_variables(cfg, bad, workdir)
        if result.returncode == 0:
            problems.add(variables_tf, "validation", f'{name_var} = "Bad_Name" was accepted')
        elif "DNS label" not in result.stderr:
            problems.add(variables_tf, "validation", f'{name_var} = "Bad_Name" failed without the DNS-label message:\n' + indent(result.stderr))


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-30:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default=Path(__file__).resolve().parent.parent, type=Path,
                        help="repository root (default: the one this script is in)")
    parser.add_argument("--no-terraform", action="store_true", help="skip the checks that run terraform")
    args = parser.parse_args()
    root = args.root.resolve()
    problems = Problems(root)

    module_dirs = sorted({p.parent for p in (root / "modules").rglob("*.tf") if ".terraform" not in p.parts})
    stack_dirs = sorted({p.parent for p in (root / "terraform").rglob("*.tf") if ".terraform" not in p.parts})
    if not module_dirs:
        problems.add(root / "modules", "layout", "no modules found")
    if not stack_dirs:
        problems.add(root / "terraform", "layout", "no root stacks found")

    configs: dict[Path, Config] = {}
    for directory in module_dirs + stack_dirs:
        configs[directory.resolve()] = Config(directory.resolve(), problems)

    for directory in module_dirs:
        check_structure(configs[directory.resolve()], "module", problems)
    for directory in stack_dirs:
        check_structure(configs[directory.resolve()], "stack", problems)

    for relative in CLUSTER_MODULES:
        directory = (root / relative).resolve()
        if directory not in configs:
            problems.add(directory, "contract", "cluster module is missing")
        else:
            check_contract(configs[directory], problems)
    contract_stacks = sorted({p.resolve() for pattern in CONTRACT_STACK_GLOBS for p in root.glob(pattern) if p.is_dir()})
    if not any(p.parent.name == "region-cluster" for p in contract_stacks):
        problems.add(root / "terraform/region-cluster", "contract", "no region-cluster stacks found")
    for directory in contract_stacks:
        if directory in configs:
            check_contract(configs[directory], problems)
        else:
            problems.add(directory, "contract", "stack has no .tf files")

    for cfg in configs.values():
        check_references(cfg, configs, problems)

    if not args.no_terraform:
        if shutil.which("terraform") is None:
            problems.add(root, "validation", "terraform is not on PATH (use --no-terraform to skip these checks)")
        else:
            with tempfile.TemporaryDirectory(prefix="check-terraform-") as scratch:
                for cfg in configs.values():
                    check_validations(cfg, problems, Path(scratch))

    checked = len(module_dirs) + len(stack_dirs)
    for item in problems.items:
        print(item)
    if problems.items:
        print(f"check_terraform: {len(problems.items)} problem(s) in {checked} modules and stacks", file=sys.stderr)
        return 1
    print(f"check_terraform: {len(module_dirs)} modules and {len(stack_dirs)} root stacks OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
