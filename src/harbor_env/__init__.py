"""harbor-env: Harbor tasks as a verifiers v1 environment for prime-rl (plugin id `harbor-env`).

verifiers resolves the id `harbor-env` to this module and takes the one Taskset, Harness and
Env subclass listed in `__all__`.
"""

import os

# litellm (imported by Harbor) downloads a model price list at import time unless told
# not to; RL hosts are often offline and the list is irrelevant to a local model.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from harbor_env.environment import HarborEnvironment, HarborEnvironmentConfig  # noqa: E402
from harbor_env.harness import (  # noqa: E402
    HarborTrialHarness,
    HarborTrialHarnessConfig,
    TrialAgentConfig,
    TrialEnvironmentConfig,
)
from harbor_env.taskset import HarborTask, HarborTaskData, HarborTaskset, HarborTasksetConfig  # noqa: E402

__all__ = [
    "HarborEnvironment",
    "HarborEnvironmentConfig",
    "HarborTask",
    "HarborTaskData",
    "HarborTaskset",
    "HarborTasksetConfig",
    "HarborTrialHarness",
    "HarborTrialHarnessConfig",
    "TrialAgentConfig",
    "TrialEnvironmentConfig",
]
