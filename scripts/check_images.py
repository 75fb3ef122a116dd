#!/usr/bin/env python3
"""Static checks of images/ (run by scripts/check-images.sh; no Docker engine needed).

templates (images/templates/<name>/)
  * template.yaml parses and follows the schema in images/README.md: required fields and their types, no
    unknown fields, name is a DNS label equal to the folder name, version is semver, port in 1-65535,
    health_check_path starts with '/', env entries {name, default, description, required} with names matching
    ^[A-Z_][A-Z0-9_]*$ (unique), resources in Kubernetes quantity syntax with requests <= limits,
    default_image present (tag = version) unless image_required is true, latest: true;
  * README.md exists; a Dockerfile exists unless image_required is true (and then it must not);
  * the Dockerfile (build context: the template folder) passes the Dockerfile checks below, EXPOSEs `port`,
    its final CMD/ENTRYPOINT is `process`, its HEALTHCHECK calls `health_check_path` on `port` (or a
    `# health:` comment names the path), ENV values agree with the env defaults;
  * requirements*.txt lines are pinned with ==; *.py files compile; *.conf files pass `nginx -t` when nginx is
    on PATH (otherwise that one check is reported as skipped).
product images (images/<name>/Dockerfile, build context: the repository root)
  * the Dockerfile checks below; `cargo build` runs with --locked; the node-agent image's USER is the
    runAsUser of the install manifest (control-plane/src/agents/install.rs).
Dockerfile checks
  * every FROM names a pinned tag or digest (not `latest`, not untagged) or an earlier stage;
  * the final stage has a USER that is numeric and not root (Kubernetes' runAsNonRoot can only verify a
    numeric UID);
  * a HEALTHCHECK in the final stage, or a `# health:` comment documenting how health is checked;
  * COPY/ADD sources exist in the build context; ADD of a URL needs --checksum; a RUN that downloads with
    curl/wget verifies a checksum (sha256sum -c / sha512sum -c / gpg --verify) in the same RUN.
images/README.md lists every template.

Every problem is printed as `path: field: message`; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - the shell wrapper installs it
    sys.exit("check_images.py: PyYAML is missing (pip install 'PyYAML==6.0.3')")

# --- template.yaml schema ---------------------------------------------------------------------------------

# field -> (python types, required)
SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "version": ((str,), True),
    "title": ((str,), True),
    "description": ((str,), True),
    "runtime": ((str,), True),
    "process": ((str,), True),
    "port": ((int,), True),
    "health_check_path": ((str,), True),
    "env": ((list,), True),
    "resources": ((dict,), True),
    "image_required": ((bool,), True),
    "default_image": ((str,), False),
    "latest": ((bool,), True),
}
ENV_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "default": ((str, type(None)), True),
    "description": ((str,), True),
    "required": ((bool,), True),
}
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# semver.org 2.0.0
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Kubernetes quantities, restricted to the suffixes the control plane's loader accepts.
QUANTITY = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>|m|k|M|G|T|Ki|Mi|Gi|Ti)$")
QUANTITY_FACTOR = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
}
REQUIREMENT_PINNED = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._,\s-]+\])?\s*==\s*[A-Za-z0-9.*+!_-]+"
    r"(?:\s*;.*)?$"
)
HEALTH_COMMENT = re.compile(r"^\s*#\s*health:\s*(?P<text>.+)$", re.I)


class Report:
    def __init__(self, root: Path):
        self.root = root
        self.problems: list[str] = []
        self.notes: list[str] = []

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def problem(self, path: Path, where: str, message: str) -> None:
        self.problems.append(f"{self.rel(path)}: {where}: {message}")

    def note(self, message: str) -> None:
        self.notes.append(message)


# --- Dockerfile parsing -----------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    index: int
    base: str  # as written, variables substituted
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str | None]
    stages: list[Stage]
    comments: list[tuple[int, str]]
    preamble: list[Instruction]


HEREDOC = re.compile(r"<<-?\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1")


def parse_dockerfile(path: Path) -> Dockerfile:
    lines = path.read_text().splitlines()
    escape = "\\"
    # Parser directives: only at the very top, before any other line.
    for raw in lines:
        m = re.match(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", raw)
        if not m:
            break
        if m.group(1).lower() == "escape":
            escape = m.group(2)
    instructions: list[Instruction] = []
    comments: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("#"):
            comments.append((i + 1, stripped))
            i += 1
            continue
        start = i + 1
        parts = []
        line = raw
        while True:
            content = line.rstrip()
            if content.endswith(escape):
                parts.append(content[: -len(escape)])
                i += 1
                # Comment lines and empty lines inside a continuation are skipped.
                while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                    if lines[i].strip().startswith("#"):
                        comments.append((i + 1, lines[i].strip()))
                    i += 1
                if i >= len(lines):
                    break
                line = lines[i]
                continue
            parts.append(content)
            i += 1
            break
        text = " ".join(p.strip() for p in parts).strip()
        keyword, _, args = text.partition(" ")
        args = args.strip()
        # Heredocs: the body lines up to the terminator belong to this instruction.
        for m in HEREDOC.finditer(args):
            terminator = m.group(2)
            body = []
            while i < len(lines) and lines[i].strip() != terminator:
                body.append(lines[i])
                i += 1
            i += 1  # the terminator
            args += "\n" + "\n".join(body)
        instructions.append(Instruction(keyword.upper(), args, start))

    global_args: dict[str, str | None] = {}
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            base = substitute(words[0], global_args) if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), base, name, ins.line))
        elif not stages:
            preamble.append(ins)
            if ins.keyword == "ARG":
                for key, value in parse_arg(ins.args):
                    global_args[key] = value
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(path, global_args, stages, comments, preamble)


def parse_arg(args: str) -> list[tuple[str, str | None]]:
    out = []
    for word in shlex.split(args):
        key, eq, value = word.partition("=")
        out.append((key, value if eq else None))
    return out


VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def substitute(text: str, values: dict[str, str | None]) -> str:
    def repl(m: re.Match) -> str:
        key = m.group(1) or m.group(2)
        value = values.get(key)
        return value if value is not None else m.group(0)

    return VAR.sub(repl, text)


def parse_env(args: str) -> dict[str, str]:
    """ENV KEY=VALUE ... (or the legacy ENV KEY VALUE)."""
    try:
        words = shlex.split(args)
    except ValueError:
        return {}
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    out = {}
    for word in words:
        key, _, value = word.partition("=")
        out[key] = value
    return out


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, or None for the shell form."""
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return None


def command_words(args: str) -> list[str]:
    form = exec_form(args)
    if form is not None:
        return form
    return ["/bin/sh", "-c", args]


def check_image_ref(ref: str, stage_names: set[str]) -> str | None:
    """None if the FROM reference is pinned, else the reason."""
    if ref in stage_names or ref == "scratch":
        return None
    if "$" in ref:
        return f"{ref!r} uses a build argument without a default value, so its tag cannot be checked"
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{ref!r} has no tag (that means `latest`); pin a version tag or a digest"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() == "latest":
        return f"{ref!r} uses the `latest` tag; pin a version tag or a digest"
    return None


DOWNLOAD = re.compile(r"\b(curl|wget)\b[^\n]*https?://")
VERIFY = re.compile(r"\b(sha256sum|sha512sum)\b[^\n]*(-c|--check)\b|\bgpg\b[^\n]*--verify")


def check_dockerfile(
    report: Report,
    df: Dockerfile,
    context: Path,
    *,
    template: dict | None = None,
) -> None:
    path = df.path
    if not df.stages:
        report.problem(path, "FROM", "no FROM instruction")
        return
    names: set[str] = set()
    for stage in df.stages:
        reason = check_image_ref(stage.base, names)
        if reason:
            report.problem(path, f"line {stage.line}: FROM", reason)
        if stage.name:
            names.add(stage.name)

    for stage in df.stages:
        for ins in stage.instructions:
            where = f"line {ins.line}: {ins.keyword}"
            if ins.keyword in ("COPY", "ADD"):
                check_copy(report, path, where, ins, context)
            elif ins.keyword == "RUN":
                body = ins.args
                if DOWNLOAD.search(body) and not VERIFY.search(body):
                    report.problem(path, where, "downloads a file without verifying its checksum in the same RUN")
                if re.search(r"\bcargo\s+build\b", body) and "--locked" not in body:
                    report.problem(path, where, "`cargo build` without --locked (Cargo.lock must decide versions)")

    final = df.stages[-1]
    users = [ins for ins in final.instructions if ins.keyword == "USER"]
    if not users:
        report.problem(path, "USER", "the final stage sets no USER (it would run as the base image's user, often root)")
    else:
        last = users[-1]
        values = dict(df.global_args)
        for ins in final.instructions:
            if ins.keyword == "ARG":
                for key, value in parse_arg(ins.args):
                    values[key] = value if value is not None else values.get(key)
        user = substitute(last.args.strip(), values)
        uid = user.split(":", 1)[0]
        if uid in ("root", "0"):
            report.problem(path, f"line {last.line}: USER", f"{user!r} is root; use a non-root numeric UID")
        elif not uid.isdigit():
            report.problem(
                path,
                f"line {last.line}: USER",
                f"{user!r} is not numeric; Kubernetes' runAsNonRoot can only verify a numeric UID",
            )

    healthchecks = [ins for ins in final.instructions if ins.keyword == "HEALTHCHECK"]
    health_comments = [m.group("text") for _, c in df.comments if (m := HEALTH_COMMENT.match(c))]
    active = healthchecks and healthchecks[-1].args.strip().upper() != "NONE"
    if template is None:
        if not active and not health_comments:
            report.problem(path, "HEALTHCHECK", "no HEALTHCHECK and no `# health:` comment saying how health is checked")
        return

    # Template-specific checks.
    port = template.get("port")
    health_path = template.get("health_check_path")
    exposed: set[int] = set()
    for ins in final.instructions:
        if ins.keyword == "EXPOSE":
            for word in ins.args.split():
                number = word.split("/", 1)[0]
                if number.isdigit():
                    exposed.add(int(number))
    if isinstance(port, int) and port not in exposed:
        shown = ", ".join(str(p) for p in sorted(exposed)) or "nothing"
        report.problem(path, "EXPOSE", f"the final stage exposes {shown}, but template.yaml has port {port}")
    if active:
        command = healthchecks[-1].args
        if isinstance(health_path, str) and health_path not in command:
            report.problem(path, f"line {healthchecks[-1].line}: HEALTHCHECK", f"does not call health_check_path {health_path!r}")
        if isinstance(port, int) and str(port) not in command:
            report.problem(path, f"line {healthchecks[-1].line}: HEALTHCHECK", f"does not use port {port}")
    elif not any(isinstance(health_path, str) and health_path in text for text in health_comments):
        report.problem(
            path,
            "HEALTHCHECK",
            f"no HEALTHCHECK and no `# health:` comment naming health_check_path {health_path!r}",
        )

    entrypoint: list[str] = []
    cmd: list[str] = []
    has_command = False
    for ins in final.instructions:
        if ins.keyword == "ENTRYPOINT":
            entrypoint = command_words(ins.args)
            cmd = []  # ENTRYPOINT resets an earlier CMD
            has_command = True
        elif ins.keyword == "CMD":
            cmd = command_words(ins.args)
            has_command = True
    process = template.get("process")
    if not has_command:
        report.problem(path, "CMD", "the final stage sets no CMD or ENTRYPOINT, so `process` cannot be checked")
    elif isinstance(process, str):
        try:
            expected = shlex.split(process)
        except ValueError as err:
            expected = None
            report.problem(path.parent / "template.yaml", "process", f"cannot be split like a shell command: {err}")
        if expected is not None and entrypoint + cmd != expected:
            report.problem(
                path,
                "CMD",
                f"the image runs {shlex.join(entrypoint + cmd)!r} but template.yaml process is {process!r}",
            )

    env_in_image: dict[str, str] = {}
    for ins in final.instructions:
        if ins.keyword == "ENV":
            env_in_image.update(parse_env(ins.args))
    for i, var in enumerate(template.get("env") or []):
        if not isinstance(var, dict):
            continue
        name, default = var.get("name"), var.get("default")
        if isinstance(name, str) and isinstance(default, str) and name in env_in_image and env_in_image[name] != default:
            report.problem(
                path.parent / "template.yaml",
                f"env[{i}].default",
                f"{default!r} but the Dockerfile sets ENV {name}={env_in_image[name]!r}",
            )


def check_copy(report: Report, path: Path, where: str, ins: Instruction, context: Path) -> None:
    text = ins.args
    # Flags come first in both forms: `COPY --chown=1:1 ["a", "b"]`.
    flags: dict[str, str] = {}
    while text.startswith("--"):
        word, _, text = text.partition(" ")
        key, _, value = word[2:].partition("=")
        flags[key] = value
        text = text.lstrip()
    form = exec_form(text)
    try:
        words = form if form is not None else shlex.split(text)
    except ValueError as err:
        report.problem(path, where, f"cannot parse arguments: {err}")
        return
    if "<<" in text:
        return  # heredoc
    if len(words) < 2:
        report.problem(path, where, "needs at least one source and a destination")
        return
    sources = words[:-1]
    if ins.keyword == "ADD":
        for src in sources:
            if re.match(r"^(https?|git)://|^git@", src) and "checksum" not in flags:
                report.problem(path, where, f"adds {src} without --checksum; download and verify it instead")
    if "from" in flags:
        return
    for src in sources:
        if re.match(r"^(https?|git)://|^git@", src):
            continue
        rel = src.lstrip("/")
        if any(ch in rel for ch in "*?["):
            if not glob.glob(str(context / rel)):
                report.problem(path, where, f"source {src!r} matches nothing in the build context {report.rel(context) or '.'}")
        elif not (context / rel).exists():
            report.problem(path, where, f"source {src!r} does not exist in the build context {report.rel(context) or '.'}")


# --- templates --------------------------------------------------------------------------------------------


def parse_quantity(value: str) -> Decimal | None:
    m = QUANTITY.match(value)
    if not m:
        return None
    try:
        return Decimal(m.group("num")) * QUANTITY_FACTOR[m.group("suffix")]
    except InvalidOperation:
        return None


def type_name(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a mapping",
             type(None): "null"}
    return " or ".join(names[t] for t in types)


def is_type(value, types: tuple[type, ...]) -> bool:
    # YAML true/false are bools, which Python also counts as ints.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def check_template_yaml(report: Report, path: Path, folder: str) -> dict | None:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        report.problem(path, "yaml", f"does not parse: {err}")
        return None
    if not isinstance(doc, dict):
        report.problem(path, "yaml", "must be a mapping of fields")
        return None

    for key in doc:
        if key not in SCHEMA:
            report.problem(path, str(key), f"unknown field (known: {', '.join(SCHEMA)})")
    for key, (types, required) in SCHEMA.items():
        if key not in doc:
            if required:
                report.problem(path, key, "is required")
            continue
        if not is_type(doc[key], types):
            report.problem(path, key, f"must be {type_name(types)}, not {doc[key]!r}")

    def get(key, types):
        value = doc.get(key)
        return value if is_type(value, types) else None

    name = get("name", (str,))
    if name is not None:
        if not DNS_LABEL.match(name):
            report.problem(path, "name", f"{name!r} is not a DNS label (lowercase letters, digits, '-', at most 63)")
        if name != folder:
            report.problem(path, "name", f"{name!r} must equal its folder name {folder!r}")
    version = get("version", (str,))
    if version is not None and not SEMVER.match(version):
        report.problem(path, "version", f"{version!r} is not a semantic version such as 1.2.0")
    for key in ("title", "description", "runtime", "process"):
        value = get(key, (str,))
        if value is not None and not value.strip():
            report.problem(path, key, "must not be empty")
    port = get("port", (int,))
    if port is not None and not 1 <= port <= 65535:
        report.problem(path, "port", f"{port} is not between 1 and 65535")
    health = get("health_check_path", (str,))
    if health is not None and (not health.startswith("/") or any(c.isspace() for c in health)):
        report.problem(path, "health_check_path", f"{health!r} must start with '/' and contain no spaces")

    env = get("env", (list,))
    if env is not None:
        seen = set()
        for i, var in enumerate(env):
            where = f"env[{i}]"
            if not isinstance(var, dict):
                report.problem(path, where, "must be a mapping {name, default, description, required}")
                continue
            for key in var:
                if key not in ENV_FIELDS:
                    report.problem(path, f"{where}.{key}", f"unknown field (known: {', '.join(ENV_FIELDS)})")
            for key, (types, required) in ENV_FIELDS.items():
                if key not in var:
                    if required:
                        report.problem(path, f"{where}.{key}", "is required")
                elif not is_type(var[key], types):
                    hint = " (quote numbers and booleans: environment values are strings)" if key == "default" else ""
                    report.problem(path, f"{where}.{key}", f"must be {type_name(types)}, not {var[key]!r}{hint}")
            var_name = var.get("name")
            if isinstance(var_name, str):
                if not ENV_NAME.match(var_name):
                    report.problem(path, f"{where}.name", f"{var_name!r} does not match ^[A-Z_][A-Z0-9_]*$")
                if var_name in seen:
                    report.problem(path, f"{where}.name", f"{var_name!r} is listed twice")
                seen.add(var_name)
            if var.get("required") is True and var.get("default") is not None:
                report.problem(path, f"{where}.default", "a required variable has no default (use null)")
            if var.get("required") is False and var.get("default") is None and "default" in var:
                report.problem(path, f"{where}.default", "an optional variable needs a default (\"\" for empty)")
            description = var.get("description")
            if isinstance(description, str) and not description.strip():
                report.problem(path, f"{where}.description", "must not be empty")

    resources = get("resources", (dict,))
    if resources is not None:
        for key in resources:
            if key not in ("requests", "limits"):
                report.problem(path, f"resources.{key}", "unknown field (known: requests, limits)")
        parsed: dict[tuple[str, str], Decimal] = {}
        for group in ("requests", "limits"):
            section = resources.get(group)
            if not isinstance(section, dict):
                report.problem(path, f"resources.{group}", "is required: a mapping {cpu, memory}")
                continue
            for key in section:
                if key not in ("cpu", "memory"):
                    report.problem(path, f"resources.{group}.{key}", "unknown field (known: cpu, memory)")
            for key in ("cpu", "memory"):
                where = f"resources.{group}.{key}"
                value = section.get(key)
                if value is None:
                    report.problem(path, where, "is required")
                    continue
                if not isinstance(value, str):
                    report.problem(path, where, f"must be a string in Kubernetes quantity syntax (quote it), not {value!r}")
                    continue
                amount = parse_quantity(value)
                if amount is None:
                    report.problem(
                        path, where,
                        f"{value!r} is not a Kubernetes quantity such as 250m, 1, 512Mi or 1Gi "
                        "(suffixes: m k M G T Ki Mi Gi Ti)",
                    )
                elif amount <= 0:
                    report.problem(path, where, f"{value!r} must be greater than zero")
                else:
                    parsed[(group, key)] = amount
        for key in ("cpu", "memory"):
            req, lim = parsed.get(("requests", key)), parsed.get(("limits", key))
            if req is not None and lim is not None and req > lim:
                report.problem(
                    path, f"resources.requests.{key}",
                    f"{resources['requests'][key]!r} is more than the limit {resources['limits'][key]!r}",
                )

    image_required = get("image_required", (bool,))
    default_image = doc.get("default_image")
    if image_required is True and default_image is not None:
        report.problem(path, "default_image", "must be absent when image_required is true (the user gives the image)")
    if image_required is False:
        if not isinstance(default_image, str) or not default_image:
            report.problem(path, "default_image", "is required unless image_required is true")
        else:
            reason = check_image_ref(default_image, set())
            if reason:
                report.problem(path, "default_image", reason)
            elif "@" not in default_image:
                repo, tag = default_image.rsplit(":", 1)
                if name is not None and repo.rsplit("/", 1)[-1] != name:
                    report.problem(path, "default_image", f"{default_image!r}: the repository should end in /{name}")
                if version is not None and tag != version:
                    report.problem(path, "default_image", f"{default_image!r}: the tag should be the version {version!r}")
    if doc.get("latest") is False:
        report.problem(path, "latest", "must be true: the folder holds the current version (older ones live in the database)")
    return doc


def check_requirements(report: Report, path: Path) -> None:
    pending = ""
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if pending:
            line = pending + " " + line
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        if not line:
            continue
        requirement = re.sub(r"\s--hash=\S+", "", line).strip()
        if not REQUIREMENT_PINNED.match(requirement):
            report.problem(path, f"line {number}", f"{raw.strip()!r} is not pinned as name==version")


def check_python(report: Report, path: Path) -> None:
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as err:
        report.problem(path, f"line {err.lineno}", f"Python syntax error: {err.msg}")


def check_nginx_conf(report: Report, path: Path) -> None:
    nginx = shutil.which("nginx")
    if nginx is None:
        report.note(f"{report.rel(path)}: `nginx -t` skipped (nginx is not on PATH)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        main = Path(tmp) / "nginx.conf"
        main.write_text(
            "pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n"
            "  client_body_temp_path %s/cb; proxy_temp_path %s/px; fastcgi_temp_path %s/fc;\n"
            "  uwsgi_temp_path %s/uw; scgi_temp_path %s/sc;\n  include %s;\n}\n"
            % (tmp, tmp, tmp, tmp, tmp, tmp, path.resolve())
        )
        result = subprocess.run(
            [nginx, "-t", "-q", "-p", tmp, "-c", str(main), "-e", "stderr"],
            capture_output=True, text=True,
        )
        # Binding the port is not part of a syntax check; only report real configuration errors.
        errors = [l for l in result.stderr.splitlines() if "[emerg]" in l and "bind()" not in l]
        if result.returncode != 0 and errors:
            report.problem(path, "nginx -t", "; ".join(errors))


def check_template(report: Report, folder: Path) -> str | None:
    meta_path = folder / "template.yaml"
    if not meta_path.is_file():
        report.problem(folder, "template.yaml", "missing: every folder under images/templates/ is a template")
        return None
    doc = check_template_yaml(report, meta_path, folder.name)
    if not (folder / "README.md").is_file():
        report.problem(folder, "README.md", "missing: describe the template (runtime, port, health path, env)")
    dockerfile = folder / "Dockerfile"
    image_required = bool(doc and doc.get("image_required") is True)
    if image_required:
        if dockerfile.exists():
            report.problem(dockerfile, "Dockerfile", "image_required is true, so the folder must not have a Dockerfile (the user gives the image)")
        readme = folder / "README.md"
        if readme.is_file():
            text = readme.read_text()
            for word in ("port", "health"):
                if word not in text.lower():
                    report.problem(readme, "README.md", f"must document the image contract ({word})")
    elif not dockerfile.is_file():
        report.problem(folder, "Dockerfile", "missing (only templates with image_required: true have none)")
    else:
        check_dockerfile(report, parse_dockerfile(dockerfile), folder, template=doc or {})
    for req in sorted(folder.glob("requirements*.txt")):
        check_requirements(report, req)
    for py in sorted(folder.rglob("*.py")):
        check_python(report, py)
    for conf in sorted(folder.rglob("*.conf")):
        check_nginx_conf(report, conf)
    return folder.name


def install_manifest_uid(root: Path) -> int | None:
    source = root / "control-plane" / "src" / "agents" / "install.rs"
    if not source.is_file():
        return None
    m = re.search(r'"runAsUser"\s*:\s*(\d+)', source.read_text())
    return int(m.group(1)) if m else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default=Path(__file__).resolve().parent.parent, type=Path,
                        help="repository root (default: this script's repository)")
    args = parser.parse_args()
    # absolute(), not resolve(): the self-test's copy links parts of the repository in.
    root: Path = args.root.absolute()
    report = Report(root)
    images = root / "images"
    templates_dir = images / "templates"
    if not templates_dir.is_dir():
        report.problem(images, "templates", "missing images/templates/")
        templates = []
    else:
        templates = []
        for folder in sorted(p for p in templates_dir.iterdir() if p.is_dir()):
            name = check_template(report, folder)
            if name:
                templates.append(name)
        if not templates:
            report.problem(templates_dir, "templates", "no templates")

    products = sorted(p for p in images.glob("*/Dockerfile") if p.parent.name != "templates")
    for dockerfile in products:
        df = parse_dockerfile(dockerfile)
        check_dockerfile(report, df, root)
        if dockerfile.parent.name == "node-agent" and df.stages:
            uid = install_manifest_uid(root)
            users = [ins for ins in df.stages[-1].instructions if ins.keyword == "USER"]
            if uid is not None and users:
                image_uid = users[-1].args.strip().split(":", 1)[0]
                if image_uid != str(uid):
                    report.problem(
                        dockerfile, f"line {users[-1].line}: USER",
                        f"{image_uid} differs from runAsUser {uid} in control-plane/src/agents/install.rs",
                    )

    readme = images / "README.md"
    if not readme.is_file():
        report.problem(images, "README.md", "missing")
    else:
        text = readme.read_text()
        for name in templates:
            if f"`{name}`" not in text:
                report.problem(readme, "templates", f"does not list the template `{name}`")

    for note in report.notes:
        print(f"check_images.py: note: {note}")
    for problem in report.problems:
        print(problem)
    print(
        f"check_images.py: {len(templates)} templates ({', '.join(templates)}), "
        f"{len(products)} product Dockerfiles ({', '.join(report.rel(p) for p in products)}): "
        f"{len(report.problems)} problem(s)"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
