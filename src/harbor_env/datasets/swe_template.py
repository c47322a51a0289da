"""One SWE-style row -> one Harbor task folder, from a template.

The folder: `environment/Dockerfile` (the row's image, the row's recipe, or a snapshot of the
repository at `base_commit`), `instruction.md` (the problem statement), `task.toml`,
`tests/test.sh` (applies the test patch, runs every FAIL_TO_PASS and PASS_TO_PASS test, writes
`reward.json`), `solution/solve.sh` (applies the gold patch).

Reward: (FAIL_TO_PASS passed / their number) x (PASS_TO_PASS passed / their number), so the
untouched repository scores 0, the gold patch 1, a partial fix its share, and a fix that breaks
tests that passed before loses that share. Each test runs on its own (`test_command`, exit
status 0 = passed), which works for any test runner at the cost of one start per test.
"""

from __future__ import annotations

import functools
import re
import shutil
import string
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harbor_env.datasets.swe_docstrings import docstring_labels
from harbor_env.datasets.swe_repos import Mirrors, check_patches, snapshot
from harbor_env.datasets.swe_rows import SweRow
from harbor_env.datasets.swe_test_ids import TestIdStyle, label_of
from harbor_env.errors import SweRowError

_PATCH_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)

DEFAULT_INSTRUCTION = """\
The repository in {workdir} has the problem described below. Change its source code so that the
problem is resolved. Tests that check your change exist but are not shown to you; do not modify
existing tests.

<issue>
{problem_statement}
</issue>
"""


class SweTemplateConfig(BaseModel):
    """How rows become task folders (`[env.taskset.swe]`); a preset fills in the defaults. The
    conversion command takes each key as an option of the same name (`--test-command`)."""

    # The docstrings below are the fields' descriptions: the command's --help shows them.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    preset: str | None = None
    """A named preset (`c2bug`); any key set here overrides the preset's value."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Canonical name -> the data set's column, e.g. {problem_statement = "issue"}."""
    image: str | None = None
    """Prebuilt image per row, a template over the row (`{instance_id}`, `{instance_id_docker}`
    = SWE-bench's image spelling, `{repo}`, `{base_commit}`); a row's own `image` column wins."""
    repo_url: str = "https://github.com/{repo}.git"
    """The repository (a git URL or a local path; a template over the row): cloned once into the
    cache to check the row's patches and, when a row has neither an image nor a Dockerfile
    recipe, to snapshot it at base_commit (no history, so no future fix)."""
    base_image: str = "python:3.12-slim-bookworm"
    """The image a snapshot task builds on."""
    docker_setup: list[str] = Field(
        default_factory=lambda: [
            "RUN apt-get update && apt-get install -y --no-install-recommends git tmux && rm -rf /var/lib/apt/lists/*"
        ]
    )
    """Dockerfile lines before the snapshot is copied in (a snapshot task's dependencies)."""
    workdir: str = "/testbed"
    """The repository's path inside the task's environment."""
    setup: str = ""
    """Shell lines the tests run first (e.g. activate the repository's Python environment)."""
    test_command: str | None = None
    """Runs one test; `{test}` becomes the test's label; exit status 0 means it passed. No
    default: only the data set knows its runner (e.g. `python -m pytest -q {test}` where the
    image has pytest); a preset sets one."""
    test_id_style: TestIdStyle = "as-is"
    """How FAIL_TO_PASS/PASS_TO_PASS names become labels for test_command: `pytest` (node ids),
    `unittest` (`test_x (mod.Class)`, `test_x (mod.Class.test_x)`, `Docstring (mod.Class.test_x)`
    -> `mod.Class.test_x`; Django's runner takes these labels too) or `as-is`."""
    test_root: str = ""
    """Where the runner's test module paths start (Django's runtests.py: `tests`): tests that a
    row names by a docstring line alone are found in the source and labelled from there."""
    test_id_regex: str | None = None
    """A data set's own spelling instead: names matching it become `test_id_format` filled with
    its named groups; names that do not match go through test_id_style."""
    test_id_format: str = ""
    instruction: str = DEFAULT_INSTRUCTION
    """instruction.md: `{problem_statement}`, `{workdir}`, `{repo}`, `{instance_id}` are filled in."""
    agent_timeout_sec: float = 1800.0
    verifier_timeout_sec: float = 1800.0
    build_timeout_sec: float = 1800.0
    cpus: int = 2
    memory_mb: int = 4096
    storage_mb: int = 10240
    check_patches: bool = True
    """At conversion, apply the gold patch and the test patch, each at base_commit (in a scratch
    index of the repository's clone), and refuse rows where either fails: such a task would score
    every episode 0. Needs the repository (repo_url) also for rows with an image."""
    strict: bool = False
    """Stop at the first bad row instead of reporting and skipping it."""


# The named presets: a data set's conventions. Add one with the keys of SweTemplateConfig it needs.
PRESETS: dict[str, dict] = {
    # C2Bug (TwelfthStar/c2bug_tasks_django_Jan-22-2026): SWE-bench-style Django instances.
    # SWE-bench's Django conventions: the repository in /testbed inside its SWE-bench image, the
    # `testbed` conda environment, Django's own runner taking `module.Class.method` labels while
    # the rows name tests `method (module.Class)`.
    "c2bug": {
        "image": "swebench/sweb.eval.x86_64.{instance_id_docker}:latest",
        "repo_url": "https://github.com/django/django.git",
        "workdir": "/testbed",
        "setup": "source /opt/miniconda3/bin/activate testbed 2>/dev/null || true",
        "test_command": "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 {test}",
        "test_id_style": "unittest",
        "test_root": "tests",
    },
}


def resolve_template(config: SweTemplateConfig) -> SweTemplateConfig:
    """`config` over its preset's values."""
    if config.preset is None:
        return config
    if config.preset not in PRESETS:
        raise SweRowError(f"[env.taskset.swe] preset: unknown preset '{config.preset}' (known: {sorted(PRESETS)})")
    return SweTemplateConfig.model_validate({**PRESETS[config.preset], **config.model_dump(exclude_unset=True)})


def runnable_test_command(template: SweTemplateConfig) -> str:
    """The template's test_command; raise (one line) when it cannot run a test, before any row."""
    if not template.test_command:
        raise SweRowError(
            "[env.taskset.swe] test_command (--test-command): not set; the command that runs one test, "
            "e.g. 'python -m pytest -q {test}' where the image has pytest, or a preset (--preset)"
        )
    if "{test}" not in template.test_command:
        raise SweRowError(f"[env.taskset.swe] test_command {template.test_command!r}: has no {{test}} placeholder")
    if template.test_id_regex:
        try:
            groups = set(re.compile(template.test_id_regex).groupindex)
        except re.error as exc:
            raise SweRowError(f"[env.taskset.swe] test_id_regex: {exc}") from None
        wanted = {name for _, name, _, _ in string.Formatter().parse(template.test_id_format) if name is not None}
        if not template.test_id_format or not wanted <= groups:
            raise SweRowError(
                f"[env.taskset.swe] test_id_format {template.test_id_format!r}: must be set from test_id_regex's "
                f"named groups {sorted(groups)}"
            )
    return template.test_command


def _fill(template: str, values: dict[str, str]) -> str:
    """Fill `{key}` placeholders; unlike str.format, braces in the values or elsewhere are kept."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def _values(row: SweRow, template: SweTemplateConfig) -> dict[str, str]:
    return {
        "instance_id": row.instance_id,
        "instance_id_docker": row.instance_id.replace("__", "_1776_").lower(),
        "repo": row.repo,
        "base_commit": row.base_commit,
        "workdir": template.workdir,
    }


def label_of_test(test_id: str, template: SweTemplateConfig) -> str | None:
    """The label test_command runs `test_id` with; None when the name does not say which test."""
    if template.test_id_regex and (match := re.match(template.test_id_regex, test_id)):
        return template.test_id_format.format(**match.groupdict())
    return label_of(test_id, template.test_id_style)


def _labels(row: SweRow, template: SweTemplateConfig, repo: Callable[[], Path]) -> dict[str, list[str]]:
    """The labels of the row's FAIL_TO_PASS and PASS_TO_PASS; raise naming the tests that have none."""
    tests = [("FAIL_TO_PASS", name) for name in row.FAIL_TO_PASS] + [
        ("PASS_TO_PASS", name) for name in row.PASS_TO_PASS
    ]
    labels = {name: label_of_test(name, template) for _, name in tests}
    unnamed = [name for name, label in labels.items() if label is None]
    if unnamed and template.test_id_style == "unittest":  # a docstring line alone: look in the source
        labels |= docstring_labels(repo(), row.base_commit, row.test_patch, unnamed, template.test_root)
    unusable = [f"{field} {name!r}" for field, name in tests if labels[name] is None]
    if unusable:
        more = f" and {len(unusable) - 3} more" if len(unusable) > 3 else ""
        raise SweRowError(
            f"{len(unusable)} test names give no runnable {template.test_id_style} label: "
            f"{', '.join(unusable[:3])}{more} (set test_id_style, or test_id_regex + test_id_format)"
        )
    return {field: [labels[name] for f, name in tests if f == field] for field in ("FAIL_TO_PASS", "PASS_TO_PASS")}


def patched_files(patch: str) -> list[str]:
    return sorted({b for _, b in _PATCH_FILE.findall(patch)})


def _dockerfile(row: SweRow, template: SweTemplateConfig, env_dir: Path, repo: Callable[[], Path]) -> tuple[str, str]:
    """The Dockerfile, and the commit the tests restore test files from."""
    values = _values(row, template)
    image = row.image or (_fill(template.image, values) if template.image and not row.dockerfile else None)
    if row.dockerfile:
        return row.dockerfile, row.base_commit
    if image:
        return f"FROM {image}\nWORKDIR {template.workdir}\n", row.base_commit
    commit = snapshot(repo(), row.base_commit, env_dir / "repo")
    lines = [
        f"FROM {template.base_image}",
        *template.docker_setup,
        f"COPY repo/ {template.workdir}/",
        f"WORKDIR {template.workdir}",
    ]
    return "\n".join(lines) + "\n", commit


TEST_SH = """\
#!/bin/bash
# Generated by harbor-env from {instance_id}: applies the test patch, runs each FAIL_TO_PASS
# and PASS_TO_PASS test on its own, writes the reward (F2P share x P2P share) to reward.json.
cd {workdir} || exit 1
{setup}
log=/logs/verifier/tests.log
# The agent may have edited the files the test patch touches: put them back first.
while IFS= read -r file; do
  git checkout -q {restore_commit} -- "$file" 2>/dev/null || rm -f -- "$file"
done < /tests/test_files.txt
if ! git apply --whitespace=nowarn /tests/test.patch >>"$log" 2>&1; then
  echo "the test patch does not apply" >>"$log"
  echo '{{"reward": 0, "fail_to_pass": 0, "pass_to_pass": 0, "test_patch_applied": 0}}' > /logs/verifier/reward.json
  exit 0
fi
share() {{  # the share of the tests listed in $1 that pass
  local passed=0 total=0 test
  while IFS= read -r test; do
    [ -z "$test" ] && continue
    total=$((total + 1))
    echo "== $test" >>"$log"
    if ( {test_command} ) </dev/null >>"$log" 2>&1; then passed=$((passed + 1)); echo "PASSED $test" >>"$log"
    else echo "FAILED $test" >>"$log"; fi
  done < "$1"
  awk -v p="$passed" -v t="$total" 'BEGIN {{ printf "%.6f", (t == 0 ? 1 : p / t) }}'
}}
f2p=$(share /tests/fail_to_pass.txt)
p2p=$(share /tests/pass_to_pass.txt)
awk -v f="$f2p" -v p="$p2p" 'BEGIN {{ printf "{{\\"reward\\": %.6f, \\"fail_to_pass\\": %s, \\"pass_to_pass\\": %s, \\"test_patch_applied\\": 1}}\\n", f * p, f, p }}' > /logs/verifier/reward.json
"""

SOLVE_SH = """\
#!/bin/bash
# The gold patch of {instance_id}.
set -e
cd {workdir}
git apply --whitespace=nowarn /solution/gold.patch
"""


def _task_toml(row: SweRow, template: SweTemplateConfig, source: str) -> str:
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (
        'version = "1.0"\n\n[metadata]\n'
        f"source = {q(source)}\ninstance_id = {q(row.instance_id)}\nrepo = {q(row.repo)}\n"
        f"base_commit = {q(row.base_commit)}\n\n"
        f"[verifier]\ntimeout_sec = {template.verifier_timeout_sec}\n\n"
        f"[agent]\ntimeout_sec = {template.agent_timeout_sec}\n\n"
        f"[environment]\nbuild_timeout_sec = {template.build_timeout_sec}\ncpus = {template.cpus}\n"
        f"memory_mb = {template.memory_mb}\nstorage_mb = {template.storage_mb}\n"
    )


def write_task(row: SweRow, template: SweTemplateConfig, dest: Path, source: str, mirrors: Mirrors) -> Path:
    """Write the task folder of `row` at `dest` (which must not exist), whole or not at all;
    raise SweRowError (the reason, one line) for a row that cannot make a working task."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_task(row, template, staging, source, mirrors)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _write_task(row: SweRow, template: SweTemplateConfig, dest: Path, source: str, mirrors: Mirrors) -> None:
    values = _values(row, template)

    @functools.cache
    def repo() -> Path:  # cloned or fetched only when a check or the snapshot needs it
        return mirrors.get(_fill(template.repo_url, values), row.base_commit)

    if template.check_patches:  # rows with an image too: their patches meet the same commit
        check_patches(repo(), row.base_commit, {"gold patch": row.patch, "test patch": row.test_patch})
    labels = _labels(row, template, repo)
    (dest / "environment").mkdir(parents=True)
    (dest / "tests").mkdir()
    (dest / "solution").mkdir()
    dockerfile, restore_commit = _dockerfile(row, template, dest / "environment", repo)
    (dest / "environment" / "Dockerfile").write_text(dockerfile)
    (dest / "instruction.md").write_text(
        _fill(template.instruction, {**values, "problem_statement": row.problem_statement})
    )
    (dest / "task.toml").write_text(_task_toml(row, template, source))
    tests = dest / "tests"
    (tests / "test.patch").write_text(row.test_patch)
    (tests / "test_files.txt").write_text("".join(f"{f}\n" for f in patched_files(row.test_patch)))
    (tests / "fail_to_pass.txt").write_text("".join(f"{label}\n" for label in labels["FAIL_TO_PASS"]))
    (tests / "pass_to_pass.txt").write_text("".join(f"{label}\n" for label in labels["PASS_TO_PASS"]))
    test_sh = TEST_SH.format(
        instance_id=row.instance_id,
        workdir=template.workdir,
        setup=template.setup,
        restore_commit=restore_commit,
        test_command=runnable_test_command(template).replace("{test}", '"$test"'),
    )
    (tests / "test.sh").write_text(test_sh)
    (dest / "solution" / "gold.patch").write_text(row.patch)
    (dest / "solution" / "solve.sh").write_text(SOLVE_SH.format(instance_id=row.instance_id, workdir=template.workdir))
    for script in (tests / "test.sh", dest / "solution" / "solve.sh"):
        script.chmod(0o755)
