"""A Harbor `Trial` of one task in the local sandbox, and its reward."""

from __future__ import annotations

from harbor.models.trial.result import TrialResult

# The conversion command's oracle check runs trials the same way.
from harbor_env.datasets.swe_oracle import run_local_trial as run_trial

__all__ = ["reward_of", "run_trial"]


def reward_of(result: TrialResult) -> float:
    assert result.exception_info is None, result.exception_info
    assert result.verifier_result is not None
    return result.verifier_result.rewards["reward"]
