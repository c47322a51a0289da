"""CPU of a profiled process by owner: whose code the time was spent in (harbor_env, verifiers,
Harbor, other), from a cProfile dump, by the file of each function (its own time, not callees')."""

from __future__ import annotations

import pstats
from collections import Counter
from pathlib import Path

OWNERS = ("harbor_env", "verifiers", "Harbor", "other")


def owner_of(filename: str) -> str:
    """The owner of a function by its file: a package folder in the path, else other (the
    standard library, asyncio, zmq, pydantic, built-ins)."""
    path = filename.replace("\\", "/")
    if "/harbor_env/" in path:
        return "harbor_env"
    if "/verifiers/" in path:
        return "verifiers"
    if "/harbor/" in path:
        return "Harbor"
    return "other"


def cpu_by_owner(profile: Path) -> dict[str, float]:
    """Seconds of own time per owner in a cProfile dump (the profiled thread only)."""
    totals: Counter[str] = Counter({owner: 0.0 for owner in OWNERS})
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_calls, _primitive, own_time, _cumulative, _callers) in stats.items():
        totals[owner_of(filename)] += own_time
    return dict(totals)
