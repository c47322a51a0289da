"""Hand a run over to prime-rl's own `rl`, on prime-rl's own environment.

prime-rl is a uv project of its own (CUDA torch, vLLM, and its pinned verifiers, renderers,
transformers and harbor). The handover starts `<prime-rl>/.venv/bin/rl` itself, once, from the
project root, with `src/` on PYTHONPATH so that every process prime-rl starts (inference,
orchestrator, one env server per source, trainer) can import `harbor_env` from this checkout,
and with prime-rl's `bin/` first on PATH so that the commands `rl` starts by name (`env-server`,
`orchestrator`, `inference`, `torchrun`) are prime-rl's.

Why not `uv run --project prime-rl --with-editable . rl`: the overlay's `bin/` comes first on
PATH and held this package's `rl`, so the handover ran itself forever; and the overlay
resolved this package's requirements over prime-rl's lock, replacing prime-rl's verifiers in
every process. Nothing here installs anything into prime-rl's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harbor_env.launcher.preflight import Problem

# Set in the environment of everything the handover starts: if this package's launcher is
# ever started from there, the handover would be running itself, so it stops at once.
HANDOVER_MARK = "HARBOR_ENV_HANDOVER"
SETUP = "bash scripts/setup-prime-rl.sh"


def project_root(start: Path | None = None) -> Path:
    """The harbor-env checkout holding `start` (default: the working directory), else `start`.

    Paths in run configs (task folders, outputs) are relative to it, and prime-rl runs there."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "harbor-env"' in pyproject.read_text(errors="replace"):
            return folder
    return here


def source_path(root: Path) -> Path | None:
    """The folder to put on prime-rl's PYTHONPATH: the checkout's `src/`, if `harbor_env` is there."""
    src = root / "src"
    return src if (src / "harbor_env" / "__init__.py").is_file() else None


@dataclass(frozen=True)
class PrimeRL:
    """A prime-rl checkout and its installed environment (`uv sync` in it makes `.venv`)."""

    checkout: Path

    @property
    def venv(self) -> Path:
        return self.checkout / ".venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def rl(self) -> Path:
        return self.venv / "bin" / "rl"

    def problems(self) -> list[Problem]:
        """What keeps this checkout from running `rl`, each with its fix."""
        if not (self.checkout / "pyproject.toml").is_file():
            return [
                Problem(
                    f"prime-rl checkout missing at {self.checkout}", f"git submodule update --init prime-rl && {SETUP}"
                )
            ]
        if not (self.checkout / "deps" / "verifiers" / "pyproject.toml").is_file():
            return [Problem(f"prime-rl's own submodules are not initialised in {self.checkout}", SETUP)]
        if not self.venv.is_dir():
            return [Problem(f"prime-rl's environment is not installed ({self.venv} missing)", SETUP)]
        if not self.rl.is_file():
            return [
                Problem(f"prime-rl's environment has no `rl` command ({self.rl} missing)", f"{SETUP} (re-installs it)")
            ]
        script = self.rl.read_text(errors="replace")
        if "harbor_env" in script:
            return [
                Problem(
                    f"{self.rl} is harbor-env's launcher, not prime-rl's `rl` (an older harbor-env shipped a "
                    "command of that name and was installed into prime-rl's environment)",
                    f"cd {self.checkout} && uv sync --all-extras --reinstall-package prime-rl",
                )
            ]
        return []

    def environment(self, root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of prime-rl's `rl` and of every process it starts."""
        env = dict(os.environ if base is None else base)
        ours = _own_bin()
        path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != ours]
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), *path])
        env["VIRTUAL_ENV"] = str(self.venv)
        env.pop("PYTHONHOME", None)
        src = source_path(root)
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
        env[HANDOVER_MARK] = "1"
        return env

    def command(self, configs: list[Path], arguments: list[str]) -> list[str]:
        return [str(self.rl), *[part for config in configs for part in ("@", str(config))], *arguments]

    def probe(self, root: Path, environments: list[str]) -> StackReport:
        """Import the plugin and the environments' Harbor classes on prime-rl's Python."""
        command = [str(self.python), "-m", "harbor_env.launcher.stack_probe", *environments]
        try:
            done = subprocess.run(
                command, cwd=root, env=self.environment(root), capture_output=True, text=True, timeout=300
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return StackReport(problems=[Problem(f"could not run prime-rl's Python ({self.python}): {exc}", SETUP)])
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            fix = "make harbor_env importable there: run from the harbor-env checkout (its src/ goes on PYTHONPATH)"
            return StackReport(
                problems=[Problem(f"harbor_env does not load on prime-rl's Python ({self.python}): {detail}", fix)]
            )
        return StackReport.from_probe(json.loads(lines[-1]))


@dataclass
class StackReport:
    """What `harbor_env.launcher.stack_probe` found in prime-rl's environment."""

    versions: dict[str, str | None] = field(default_factory=dict)
    harbor_env: str = ""
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def from_probe(cls, data: dict) -> StackReport:
        problems = []
        if data.get("plugin_error"):
            problems.append(
                Problem(
                    f"the harbor-env plugin does not load on prime-rl's verifiers/harbor: {data['plugin_error']}",
                    "use the prime-rl commit this project pins (git submodule update prime-rl && " + SETUP + ")",
                )
            )
        for name, missing in data.get("environments", {}).items():
            if missing:
                extra = missing.get("extra")
                fix = (
                    f"{SETUP} {extra}"
                    if extra
                    else "install what the environment class imports into prime-rl's environment"
                )
                problems.append(
                    Problem(f"environment `{name}` cannot be loaded in prime-rl's environment: {missing['error']}", fix)
                )
        return cls(versions=data.get("versions", {}), harbor_env=data.get("harbor_env", ""), problems=problems)

    def describe(self) -> str:
        packages = ", ".join(f"{name} {version or 'missing'}" for name, version in self.versions.items())
        return f"{packages}; harbor_env from {self.harbor_env}"


def _own_bin() -> Path | None:
    """This interpreter's virtual environment's `bin/`, kept off prime-rl's PATH: its console
    scripts (this checkout's `rl` among them) must never stand in for prime-rl's."""
    if sys.prefix == sys.base_prefix:
        return None
    return (Path(sys.prefix) / "bin").resolve()
