"""The reward rule: what a verifier may write, checked on the file itself.

Harbor parses `reward.json` with pydantic in lax mode, so `{"reward": true}` arrives as 1 and an
integer too large for a float raises an OverflowError later, naming no file. The rule, applied
to every episode before it is scored (a violation errors the episode, it is never a score):

- every value of `reward.json` is a JSON number: not a boolean, string or null, and an integer
  must fit a float;
- the reward (the `reward` key, or `reward.txt`) lies within the task's declared range,
  `[metadata] reward_range = [low, high]` in task.toml, default [0, 1].
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harbor_env.errors import RewardRuleError

DEFAULT_REWARD_RANGE = (0.0, 1.0)
RANGE_KEY = "reward_range"
REWARD_FILE_LIMIT = 64 * 1024  # a reward file holds a few numbers; more is not read


def declared_range(metadata: dict[str, Any], task_toml: Path) -> tuple[float, float]:
    """The task's `[metadata] reward_range`, or [0, 1]."""
    value = metadata.get(RANGE_KEY)
    if value is None:
        return DEFAULT_REWARD_RANGE
    valid = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and value[0] <= value[1]
    )
    if not valid:
        raise RewardRuleError(
            f"{task_toml}: [metadata] {RANGE_KEY} must be [low, high] with finite low <= high, got {value!r}"
        )
    return float(value[0]), float(value[1])


def check_reward_json(path: Path) -> None:
    """Raise RewardRuleError naming `path` when a value of reward.json is not a plain number,
    or when the file is too large to be a reward (it is not read then)."""
    try:
        size = path.stat().st_size
    except OSError:
        return
    if size > REWARD_FILE_LIMIT:
        raise RewardRuleError(
            f"{path}: {size:,} bytes; a reward file holds a few numbers (at most {REWARD_FILE_LIMIT:,} bytes)"
        )
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return  # missing or unparsable: Harbor's verifier already reports those, with the path
    for key, value in data.items() if isinstance(data, dict) else [("", data)]:
        name = f"`{key}`" if key else "the value"
        if isinstance(value, bool):
            raise RewardRuleError(f"{path}: {name} is {json.dumps(value)}, a boolean; reward values must be numbers")
        if isinstance(value, int):
            try:
                float(value)
            except OverflowError:
                raise RewardRuleError(
                    f"{path}: {name} is an integer of {len(str(abs(value)))} digits, too large for a float"
                ) from None
        elif not isinstance(value, float):
            raise RewardRuleError(f"{path}: {name} is {json.dumps(value)[:80]}, not a number")


def check_in_range(reward: float, reward_range: tuple[float, float], where: str) -> None:
    low, high = reward_range
    if not low <= reward <= high:
        raise RewardRuleError(
            f"{where}: reward {reward} is outside the task's range [{low:g}, {high:g}] "
            f"(declare another with [metadata] {RANGE_KEY} in task.toml)"
        )
