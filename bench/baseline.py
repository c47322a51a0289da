"""The env server's CPU per episode at concurrency 32, against the command path this project had
before issue 16 (nsenter + setpriv per command) put back in the same run: bench/scaling.py
--compare nsenter. Target (issue 16): at least 20% lower.

Everything else that changed since (the sandbox's start, say) is in both sides, so the figure
understates the change against the code of that day; it is the part that can be measured in
one run.

Usage: uv run --group bench python bench/baseline.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import json
import pathlib

import common
import scaling

VARIANT = "nsenter"
TARGET_REDUCTION = 0.20


async def section(out_dir: pathlib.Path, quick: bool = False) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    return await scaling.compare(out_dir, quick, VARIANT)


def verdict(out_dir: pathlib.Path) -> dict:
    """The target's verdict from what `section` left in `out_dir`."""
    figures = json.loads((out_dir / f"compare-{VARIANT}.json").read_text())
    now, before = (figures["per_episode_ms"][side]["env server"] for side in ("current", VARIANT))
    reduction = 1 - now / before
    why = f"{now:.0f} ms against {before:.0f} ms with the {VARIANT} command path, {reduction:.0%} lower"
    if figures["notes"]:
        why += f"; {len(figures['notes'])} notes (failures or leaks): {figures['notes'][0]}"
    return {
        "target": f"env-server CPU per episode at concurrency {scaling.SATURATED} >= {TARGET_REDUCTION:.0%} lower",
        "met": reduction >= TARGET_REDUCTION and not figures["notes"],
        "why": why,
    }


def main() -> None:
    common.run_section_alone(__doc__, "fewer, shorter batches; no verdict", section)


if __name__ == "__main__":
    main()
