#!/bin/bash
set -e
cat > /app/versions.py <<'PY'
"""Sort release version strings."""


def _key(version: str):
    release, _, pre = version.partition("-")
    numbers = [int(part) for part in release.split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return (numbers, 0 if pre else 1, pre)


def sort_versions(versions: list[str]) -> list[str]:
    """Versions in ascending order."""
    return sorted(versions, key=_key)
PY
