"""`python -m harbor_env.launcher.stack_probe [--check] [ENVIRONMENT ...]`: can this Python run harbor-env episodes?

The launcher runs it on prime-rl's interpreter before handing over, so a missing cloud SDK or
a plugin that does not load on prime-rl's own verifiers/harbor is one clear error before
training starts, not a crash in an env server minutes later. ENVIRONMENT is a Harbor
environment type (docker, modal, ...), `local`, or a `module:Class` import path. Prints one
JSON line: package versions, where `harbor_env` came from, and what failed to load (with
`--check`, exit 1 if anything did).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
from typing import Any

PACKAGES = ("verifiers", "harbor", "renderers", "transformers")
LOCAL_SANDBOX = "harbor_env.sandbox:LocalSandbox"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _plugin_error() -> str | None:
    """Resolve the plugin id the way verifiers (and so prime-rl's env servers) does."""
    try:
        from verifiers.v1.utils.loaders import resolve_env_config

        resolve_env_config({"taskset": {"id": "harbor-env"}, "agent": {"harness": {"id": "harbor-env"}}})
    except Exception as exc:  # any failure is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def _missing_sdks(extra: str) -> list[str]:
    """The distributions Harbor's extra `extra` asks for that are not installed.

    Harbor imports a cloud SDK inside a try block and fails only when the environment starts,
    so importing the class proves nothing; the extra's own requirement list does."""
    from packaging.requirements import Requirement

    missing = []
    for line in importlib.metadata.requires("harbor") or []:
        requirement = Requirement(line)
        if requirement.name == "harbor" or requirement.marker is None:
            continue
        if requirement.marker.evaluate({"extra": extra}) and not requirement.marker.evaluate({"extra": ""}):
            if _version(requirement.name) is None:
                missing.append(requirement.name)
    return missing


def _load_environment(name: str) -> dict[str, Any] | None:
    """None when the environment can run here; else the error and Harbor's extra for it."""
    import_path = LOCAL_SANDBOX if name == "local" else name if ":" in name else None
    extra = None
    try:
        if import_path is not None:
            module, _, attribute = import_path.partition(":")
            getattr(importlib.import_module(module), attribute)
            return None
        from harbor.environments import factory
        from harbor.models.environment_type import EnvironmentType

        kind = EnvironmentType(name)
        entry = getattr(factory, "_ENVIRONMENT_REGISTRY", {}).get(kind)
        extra = getattr(entry, "pip_extra", None)
        factory._load_environment_class(kind)
        missing = _missing_sdks(extra) if extra else []
        if missing:
            return {
                "error": f"Harbor's extra `{extra}` is not installed (missing: {', '.join(missing)})",
                "extra": extra,
            }
    except Exception as exc:
        cause = exc.__cause__ or exc
        return {"error": f"{type(cause).__name__}: {cause}".splitlines()[0], "extra": extra}
    return None


def probe(environments: list[str]) -> dict[str, Any]:
    import harbor_env

    return {
        "python": sys.executable,
        "versions": {name: _version(name) for name in PACKAGES},
        "harbor_env": str(harbor_env.__path__[0]),
        "plugin_error": _plugin_error(),
        "environments": {name: _load_environment(name) for name in environments},
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    found = probe([a for a in argv if a != "--check"])
    print(json.dumps(found))
    failed = found["plugin_error"] or any(found["environments"].values())
    return 1 if check and failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
