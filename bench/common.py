"""The benchmarks' command line and report format. Everything else they share (env server, fake
model, policies, task writer, /proc readings) is in harbor_env.testing; no import here has side
effects: each script calls `apply_environment_defaults()` before verifiers or Harbor load.

Re-exported for bench/lifecycle.py: SAMPLE_TASKS, processes_mentioning."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harbor_env.testing.processes import processes_mentioning  # noqa: F401
from harbor_env.testing.tasks import REPO, SAMPLE_TASKS  # noqa: F401

ROOT = REPO

# Terminus-2's options as harbor_env's harness sets them by default (TrialAgentConfig.to_harbor):
# for runs that configure Terminus-2 themselves (Harbor's Job, agent variants) to do the same work.
TERMINUS_OPTIONS = {
    "parser_name": "json",
    "enable_summarize": False,
    "record_terminal_session": False,
    "interleaved_thinking": False,
    "suppress_max_turns_warning": True,
}


def section_arguments(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """The command line every benchmark section shares: --quick and --out."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser


def run_section_alone(doc: str, quick_help: str, section: Callable[[Path, bool], Any]) -> None:
    """A section's own command line: parse --quick/--out, run it, print its markdown."""
    args = section_arguments(doc, quick_help).parse_args()
    print(asyncio.run(section(args.out, args.quick)))


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
