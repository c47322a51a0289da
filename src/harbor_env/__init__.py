"""harbor-env: Harbor tasks as a verifiers v1 environment for prime-rl (plugin id `harbor-env`).

verifiers resolves the id `harbor-env` to this module and takes the one Taskset, Harness and
Env subclass listed in `__all__`. They are imported on first use: importing verifiers takes
many seconds, and users of `harbor_env.sandbox` alone (a plain Harbor environment) need none
of it.
"""

import importlib
import os
from typing import Any

# litellm (imported by Harbor) downloads a model price list at import time unless told
# not to; RL hosts are often offline and the list is irrelevant to a local model.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_EXPORTS = {
    "HarborEnvironment": "harbor_env.environment",
    "HarborEnvironmentConfig": "harbor_env.environment",
    "HarborTask": "harbor_env.taskset",
    "HarborTaskData": "harbor_env.taskset",
    "HarborTaskset": "harbor_env.taskset",
    "HarborTasksetConfig": "harbor_env.taskset",
    "HarborTrialHarness": "harbor_env.harness",
    "HarborTrialHarnessConfig": "harbor_env.harness",
    "TrialAgentConfig": "harbor_env.harness",
    "TrialEnvironmentConfig": "harbor_env.harness",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harbor_env' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
