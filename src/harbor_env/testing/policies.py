"""Scripted Terminus-2 policies for the fake inference server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from harbor_env.testing.inference import PolicyInput


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

    plans: dict[str, ScriptedPolicy]
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
