"""Scripted Terminus-2 policies for the fake inference server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harbor_env.testing.inference import Policy, PolicyInput
from harbor_env.testing.tasks import MARKER, SAMPLE_TASKS, TASK


def terminus_reply(*keystrokes: str, task_complete: bool = False, duration: float = 0.2) -> str:
    """A Terminus-2 JSON reply that types `keystrokes` (each a command ending in a newline)."""
    return json.dumps(
        {
            "analysis": "Looking at the terminal.",
            "plan": "Run the next commands.",
            "commands": [{"keystrokes": k, "duration": duration} for k in keystrokes],
            "task_complete": task_complete,
        }
    )


def run_script(script: str) -> str:
    """Keystrokes that write `script` to a file in the sandbox and run it."""
    return f"cat > /tmp/policy.sh <<'POLICY_EOF'\n{script}\nPOLICY_EOF\nbash /tmp/policy.sh\n"


def script_then_finish(*keystrokes: str, duration: float = 0.2) -> list[str]:
    """Replies: type the keystrokes, then say the task is complete twice (Terminus-2 asks to confirm)."""
    return [
        terminus_reply(*keystrokes, duration=duration),
        terminus_reply(task_complete=True),
        terminus_reply(task_complete=True),
    ]


@dataclass
class ScriptedPolicy:
    """Replies chosen by a marker in the prompt (e.g. a phrase of the task's instruction) and
    by the turn number; the last reply repeats once a script runs out."""

    scripts: dict[str, Sequence[str]]
    default: Sequence[str] = field(default_factory=lambda: script_then_finish("ls\n"))

    def __call__(self, request: PolicyInput) -> str:
        script = self.default
        for marker, replies in self.scripts.items():
            if marker in request.prompt:
                script = replies
                break
        return script[min(request.turn, len(script) - 1)]


@dataclass
class RotatingPolicy:
    """Gives each new session (its first model call) the next plan in turn, and keeps to it
    for the session's later calls: concurrent episodes of one task get different plans, so a
    GRPO group scores both ways. `assigned` says which plan each session got, in order."""

    plans: dict[str, Policy]
    assigned: dict[str, str] = field(default_factory=dict)

    def plan_of(self, session_id: str) -> str:
        if session_id not in self.assigned:
            names = list(self.plans)
            self.assigned[session_id] = names[len(self.assigned) % len(names)]
        return self.assigned[session_id]

    def index_of(self, session_id: str) -> int:
        """The session's place in the order of first calls (assigning it one if new)."""
        self.plan_of(session_id)
        return list(self.assigned).index(session_id)

    def __call__(self, request: PolicyInput) -> str:
        return self.plans[self.plan_of(request.session_id)](request)


SOLVED_MARKER = "POLICY-EXIT-42"  # typed as $((40+2)): only the echo's output holds it


class SolveEachTask:
    """Replies with the solution script (`solution/solve.sh`) of whichever task in `tasks` the
    prompt is about (the first line of its instruction), then says the task is complete.

    `include` limits the tasks it knows; a prompt about none of them gets `fallback` (an error
    without one). With `wait_until_done`, it says the task is complete only once the script has
    exited (its marker shows in the terminal), waiting otherwise: on a loaded machine a fixed
    wait loses the race, and the verifier scores a half-run script (reward 0 that is no fault
    of the runner)."""

    def __init__(
        self,
        tasks: Path,
        *,
        include: Sequence[str] | None = None,
        duration: float = 0.5,
        wait_until_done: bool = False,
        fallback: Sequence[str] | None = None,
    ):
        self.duration = duration
        self.wait_until_done = wait_until_done
        self.fallback = fallback
        self.scripts: dict[str, list[str]] = {}
        for task in sorted(tasks.iterdir()):
            if not (task / "solution" / "solve.sh").is_file() or (include is not None and task.name not in include):
                continue
            keystrokes = run_script((task / "solution" / "solve.sh").read_text())
            marker = (task / "instruction.md").read_text().splitlines()[0]
            if wait_until_done:
                self.scripts[marker] = [terminus_reply(keystrokes + "echo POLICY-EXIT-$((40+2))\n", duration=duration)]
            else:
                self.scripts[marker] = script_then_finish(keystrokes, duration=duration)

    def __call__(self, request: PolicyInput) -> str:
        if self.wait_until_done and request.turn > 0:
            if SOLVED_MARKER in request.prompt:
                return terminus_reply(task_complete=True)  # twice: Terminus-2 asks to confirm
            return terminus_reply("", duration=self.duration)
        replies = next((r for marker, r in self.scripts.items() if marker in request.prompt), self.fallback)
        if replies is None:
            raise KeyError("the prompt matches no task this policy solves")
        return replies[min(request.turn, len(replies) - 1)]


# The tests' policies for the sample task `repair-config`: one that solves it, one that only looks.
SOLVING = SolveEachTask(SAMPLE_TASKS, include=[TASK], duration=3, fallback=script_then_finish("ls\n"))
FAILING = ScriptedPolicy({MARKER: script_then_finish("cat /app/service/config.ini\n")})
