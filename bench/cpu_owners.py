"""A process's CPU by owner, from py-spy samples (bench/profiles.py's `sampling`): whose code
each busy sample was working for. The owner of a sample is the innermost frame on its stack that
is harbor_env's, verifiers' or Harbor's code, so time in the standard library, pydantic, zmq or
the tokenizer counts for the package that called it; a sample with none of the three on its
stack (the event loop itself, the tokenizer's own threads) is "other"; samples of a thread
waiting for work are not CPU and are left out.
"""

from __future__ import annotations

import collections
from pathlib import Path

from profiles import is_idle

OWNERS = ("harbor_env", "verifiers", "Harbor", "other")


def owner_of(filename: str) -> str | None:
    """The owner of a frame by its file: a package folder in the path."""
    path = filename.replace("\\", "/")
    if "/harbor_env/" in path:
        return "harbor_env"
    if "/verifiers/" in path:
        return "verifiers"
    if "/harbor/" in path:
        return "Harbor"
    return None


def samples_by_owner(raw_profile: Path) -> collections.Counter[str]:
    """Busy samples per owner in py-spy's raw output (`frame;frame;... count`, outermost first)."""
    counts: collections.Counter[str] = collections.Counter(dict.fromkeys(OWNERS, 0))
    for line in raw_profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if is_idle(frames[-1]):
            continue  # a pool's thread waiting for work: py-spy does not always see it is idle
        owner = "other"
        for frame in reversed(frames):
            found = owner_of(frame.rpartition(" (")[2])
            if found is not None:
                owner = found
                break
        counts[owner] += int(count)
    return counts


def cpu_by_owner(raw_profile: Path, cpu_seconds: float) -> dict[str, float]:
    """`cpu_seconds` (the process's CPU over the sampled window) split by the owners' shares of
    the busy samples."""
    counts = samples_by_owner(raw_profile)
    total = sum(counts.values())
    if total == 0:
        raise RuntimeError(f"{raw_profile}: py-spy took no busy sample")
    return {owner: cpu_seconds * counts[owner] / total for owner in OWNERS}
