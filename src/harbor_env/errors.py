"""Every exception harbor-env raises, in one place.

Two families of errors, by who must act:
- `InvalidInputError` (a `ValueError`): a user must fix a config, a task folder, a data set or a
  job folder; the message names the file, field or command to fix. The launcher prints it as one
  line, never as a traceback.
- `InfrastructureError` (a `RuntimeError`): an episode could not be run or scored for a reason
  outside the agent's control (sandbox, model server, verifier isolation). The rollout is errored
  (trace ok=False), never scored 0.
`VerifierForfeit` is neither: the agent's own outcome, scored 0.
The two `BaseException`s at the end are not errors but signals that must pass through
Terminus-2's `except Exception` handlers to end a rollout.
"""

from __future__ import annotations


class HarborEnvError(Exception):
    """Base of every error harbor-env raises."""


# ------------------------------------------------------------------ input a user must fix


class InvalidInputError(HarborEnvError, ValueError):
    """Input a user must fix; the message names the file, field or command."""


class ConfigError(InvalidInputError):
    """The run config cannot be used; the message names the file and key to fix."""


class InvalidTaskError(InvalidInputError):
    """A task folder is not a valid Harbor task; the message names the folder and the problem."""


class DockerfileError(InvalidTaskError):
    """A task's Dockerfile cannot be read; the message names the file and line."""


class RewardRuleError(InvalidInputError):
    """The verifier's output or the task's declared range breaks the reward rule."""


class DatasetUnavailableError(InvalidInputError):
    """A registry dataset could not be loaded or downloaded; the message says what to fix."""


class SweRowError(InvalidInputError):
    """A data set or one of its rows cannot be used; the message names the file, row and column."""


class JobExportError(InvalidInputError):
    """A Harbor job folder cannot be read; the message names the folder."""


# ------------------------------------------------------------------ infrastructure


class InfrastructureError(HarborEnvError, RuntimeError):
    """An episode could not be run or scored for a reason outside the agent's control."""


class LocalSandboxError(InfrastructureError):
    """The local sandbox cannot run here, or died; the message says what to fix.

    (Not `LocalSandboxError`: verifiers has one, for its own sandboxes.)"""


class VerifierIsolationError(InfrastructureError):
    """The environment could not be made safe for the verifier."""


class InferenceError(InfrastructureError):
    """The agent's model call failed (inference server unreachable, 5xx, malformed reply).

    Its name is what Harbor records in the trial result; outcome.py reads it there."""


class TrialError(InfrastructureError):
    """The trial failed for a reason outside the agent's control."""


# ------------------------------------------------------------------ the agent's outcome


class VerifierForfeit(HarborEnvError):
    """The verifier ran out of its time while the environment still answers: the agent's doing
    (its code the tests run hangs or holds their output open, a WORKDIR too large to check). The
    episode scores 0; an errored episode would be dropped from GRPO, and the agent learn to hang."""


# ------------------------------------------------------------------ rollout signals


class RolloutStopped(BaseException):
    """The interception refused a turn: the rollout hit a stop condition or a budget."""


class ContextExhausted(RolloutStopped):
    """The next prompt does not fit the model's context window: the episode ends there and the
    verifier scores what the agent did (context_window.py), on every verifiers version."""


class ModelCallFailed(BaseException):
    """A model call failed for a reason the agent cannot fix by retrying."""
