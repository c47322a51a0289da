"""Harbor job folders -> prime-rl SFT data: one chat per trial, with its reward.

    python -m harbor_env.datasets.sft_export outputs/eval/<job> [more jobs] --out outputs/sft/harbor \
        --min-reward 1.0

reads every trial of each job (`harbor run`'s or this project's `--eval`), turns its agent's
ATIF trajectory (`agent/trajectory.json`) into chat messages and writes `<out>/train.jsonl`, one
row per kept trial: `messages` (what prime-rl's `sft` trains on; the loss falls on the assistant
turns) and `reward`, `task`, `trial`, `job`. prime-rl's `[data] name = "<out>"` loads it.

Terminus-2 writes the model's raw replies into the trajectory when its agent kwargs say
`trajectory_config = {raw_content = true}`; the rows then hold exactly the chat the model saw.
Without it, the trajectory keeps the reply's parts (analysis, plan, commands) and each reply is
rebuilt in Terminus-2's JSON reply format. Errored trials (no verifier reward) are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harbor_env.errors import JobExportError

# Environment variables whose values must never reach the data (keys the eval or agent had).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
REDACTED = "[redacted]"


@dataclass
class ExportStats:
    trials: int = 0
    kept: int = 0
    errored: int = 0
    """No verifier reward: the trial failed."""
    no_chat: int = 0
    """Scored, but no chat to learn from: no trajectory (the oracle and nop agents write none)
    or no reply in it."""
    filtered: int = 0
    redacted: int = 0

    def describe(self) -> str:
        return (
            f"{self.errored} errored, {self.no_chat} without a chat (no agent trajectory, e.g. oracle or nop), "
            f"{self.filtered} outside the reward range"
        )


def _reply(step: dict[str, Any]) -> str:
    """The model's reply of an agent step: raw, or rebuilt in Terminus-2's JSON format."""
    calls = step.get("tool_calls") or []
    if not calls:
        return step.get("message") or ""
    message = step.get("message") or ""
    if message.startswith("Plan: "):  # Terminus-2 leaves out an empty analysis
        analysis, plan = "", message.removeprefix("Plan: ")
    else:
        analysis, _, plan = message.removeprefix("Analysis: ").partition("\nPlan: ")
    commands = [call["arguments"] for call in calls if call.get("function_name") == "bash_command"]
    reply = {
        "analysis": analysis,
        "plan": plan,
        "commands": commands,
        "task_complete": any(call.get("function_name") == "mark_task_complete" for call in calls),
    }
    return json.dumps(reply)


def trajectory_messages(trajectory: dict[str, Any]) -> list[dict[str, str]]:
    """ATIF steps as chat messages: user and system steps as they are, each agent step as the
    assistant's reply followed by its observation as the next user message; trailing user
    messages (nothing answered them) are dropped."""
    messages: list[dict[str, str]] = []
    for step in trajectory.get("steps", []):
        source = step.get("source")
        if source in ("user", "system"):
            messages.append({"role": source, "content": step.get("message") or ""})
        elif source == "agent":
            messages.append({"role": "assistant", "content": _reply(step)})
            results = (step.get("observation") or {}).get("results") or []
            observation = "\n".join(r.get("content") or "" for r in results if isinstance(r.get("content"), str))
            if observation:
                messages.append({"role": "user", "content": observation})
    while messages and messages[-1]["role"] != "assistant":
        messages.pop()
    return messages


def _secrets() -> list[str]:
    return sorted({v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}, key=len, reverse=True)


def _redact(messages: list[dict[str, str]], secrets: list[str], stats: ExportStats) -> None:
    for message in messages:
        for secret in secrets:
            if secret in message["content"]:
                message["content"] = message["content"].replace(secret, REDACTED)
                stats.redacted += 1


def trial_dirs(job: Path) -> list[Path]:
    if not job.is_dir():
        raise JobExportError(f"{job}: not a folder (give a Harbor job folder, e.g. outputs/eval/<job>)")
    trials = sorted(p for p in job.iterdir() if (p / "result.json").is_file() and (p / "agent").is_dir())
    if not trials:
        raise JobExportError(f"{job}: no trials (a Harbor job folder holds <trial>/result.json and <trial>/agent/)")
    return trials


def export_rows(
    jobs: list[Path], min_reward: float | None, max_reward: float | None, stats: ExportStats
) -> list[dict[str, Any]]:
    """The SFT rows of every trial in `jobs` whose reward lies in [min_reward, max_reward]."""
    from harbor.models.trial.result import TrialResult

    secrets = _secrets()
    rows = []
    for job in jobs:
        for trial in trial_dirs(job):
            stats.trials += 1
            result = TrialResult.model_validate_json((trial / "result.json").read_text())
            rewards = result.verifier_result.rewards if result.verifier_result else None
            trajectory_path = trial / "agent" / "trajectory.json"
            if not rewards or "reward" not in rewards:
                stats.errored += 1
                continue
            if not trajectory_path.is_file():
                stats.no_chat += 1
                continue
            reward = float(rewards["reward"])
            if (min_reward is not None and reward < min_reward) or (max_reward is not None and reward > max_reward):
                stats.filtered += 1
                continue
            messages = trajectory_messages(json.loads(trajectory_path.read_text()))
            if not any(m["role"] == "assistant" for m in messages):
                stats.no_chat += 1
                continue
            _redact(messages, secrets, stats)
            rows.append(
                {
                    "messages": messages,
                    "reward": reward,
                    "task": result.task_name,
                    "trial": result.trial_name,
                    "job": job.name,
                }
            )
            stats.kept += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write prime-rl SFT data (chat messages per trial) from Harbor jobs.")
    parser.add_argument("jobs", nargs="+", help="Harbor job folders (outputs/eval/<job>, jobs/<job> of harbor run)")
    parser.add_argument("--out", required=True, help="folder to write train.jsonl into (prime-rl's [data] name)")
    parser.add_argument("--min-reward", type=float, help="keep trials with at least this reward (e.g. 1.0)")
    parser.add_argument("--max-reward", type=float, help="keep trials with at most this reward")
    args = parser.parse_args(argv)
    stats = ExportStats()
    try:
        rows = export_rows([Path(j).expanduser().resolve() for j in args.jobs], args.min_reward, args.max_reward, stats)
    except (JobExportError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())[:500]}", file=sys.stderr)
        return 2
    if not rows:
        print(
            f"error: no trial kept ({stats.trials} trials: {stats.describe()}); nothing written",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".train.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tmp.replace(out / "train.jsonl")
    print(
        f"wrote {stats.kept} chats to {out / 'train.jsonl'} ({stats.trials} trials: {stats.describe()}; "
        f"secrets redacted from {stats.redacted} messages)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
