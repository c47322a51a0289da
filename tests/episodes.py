"""Transitional: test_adversarial.py (owned elsewhere this round) still imports these from here;
they live in harbor_env.testing. Delete this file once it imports them from there."""

from harbor_env.testing.configs import task_data  # noqa: F401
from harbor_env.testing.episodes import run_episode  # noqa: F401
from harbor_env.testing.policies import SOLVING  # noqa: F401
