"""`python -m src.train`: the training entry point.

Training through prime-rl arrives with the entry-point issue. Until then this runs the install
check a newcomer needs: Harbor's oracle agent on every sample task, in the local sandbox, with
the reward each one gets (all should be 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import harbor_env  # noqa: F401  (keeps litellm offline)
from harbor.models.trial.config import AgentConfig, EnvironmentConfig, TaskConfig, TrialConfig
from harbor.trial.trial import Trial

TASKS = Path(__file__).resolve().parents[1] / "datasets" / "harbor_tasks"


async def check(tasks: Path) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="harbor-env-check-") as tmp:
        for task in sorted(p for p in tasks.iterdir() if (p / "task.toml").is_file()):
            config = TrialConfig(
                task=TaskConfig(path=task),
                trials_dir=Path(tmp),
                agent=AgentConfig(name="oracle"),
                environment=EnvironmentConfig(import_path="harbor_env.sandbox:LocalSandbox"),
            )
            result = await (await Trial.create(config)).run()
            rewards = result.verifier_result.rewards if result.verifier_result else None
            error = result.exception_info.exception_message if result.exception_info else ""
            failures += rewards is None or rewards.get("reward") != 1
            print(f"{task.name:24} reward={rewards and rewards.get('reward')} {error}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="training config (used once training lands)")
    parser.add_argument("--tasks", type=Path, default=TASKS, help="task folder to check")
    args = parser.parse_args(argv)
    if args.config:
        print("Training through prime-rl is not wired up yet; running the install check instead.")
    return 1 if asyncio.run(check(args.tasks)) else 0


if __name__ == "__main__":
    sys.exit(main())
