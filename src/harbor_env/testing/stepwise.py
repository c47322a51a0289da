"""A scripted Terminus-2 policy for long episodes: one step per turn, its progress read back
from the terminal, and replies to Terminus-2's summarization calls that carry that progress
over to the fresh chat.

Progress lives in what the model can see: a step ends by echoing `STEP-<k>-DONE`, typed as
`$((k))` so that only the command's output (not the reply that typed it) holds the marker. The
next step is the one after the highest marker in the prompt; after a summarization the markers
come from the summary and answers, which list those the history held. A policy that forgot them
would start over, and the episode would not finish: the tests see it in the reward.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harbor_env.testing.inference import PolicyInput
from harbor_env.testing.policies import terminus_reply

STEP_DONE = re.compile(r"STEP-(\d+)-DONE")
# The openings of Terminus-2's three summarization prompts (Harbor 0.21-0.25).
SUMMARY_PROMPT = "You are about to hand off your work to another AI agent"
QUESTIONS_PROMPT = "You are picking up work from a previous AI agent"
ANSWERS_PROMPT = "The next agent has a few questions for you"
USER_TURN = "<|im_start|>user\n"


def last_user_message(prompt: str) -> str:
    """The last user turn of a ChatML prompt."""
    return prompt.rsplit(USER_TURN, 1)[-1].split("<|im_end|>", 1)[0]


def steps_done(text: str) -> list[int]:
    return sorted({int(k) for k in STEP_DONE.findall(text)})


def done_list(text: str) -> str:
    return " ".join(f"STEP-{k}-DONE" for k in steps_done(text)) or "nothing yet"


@dataclass
class StepwisePolicy:
    """Types `steps[k]` (keystrokes, newline-terminated) at the turn after step k-1's marker
    showed, then says the task is complete (twice: Terminus-2 asks to confirm). Answers
    Terminus-2's summary, questions and answers prompts with the steps done so far."""

    steps: Sequence[str]
    duration: float = 0.3

    def __call__(self, request: PolicyInput) -> str:
        last = last_user_message(request.prompt)
        if last.lstrip().startswith(SUMMARY_PROMPT):
            return f"Summary of the work so far. Completed: {done_list(request.prompt)}."
        if last.lstrip().startswith(QUESTIONS_PROMPT):
            return "1. Which steps are done?\n2. What is the next step?"
        if last.lstrip().startswith(ANSWERS_PROMPT):
            return f"1. Done: {done_list(request.prompt)}.\n2. The one after the last done."
        done = steps_done(request.prompt)
        following = (done[-1] if done else 0) + 1
        if following > len(self.steps):
            return terminus_reply(task_complete=True)
        keystrokes = self.steps[following - 1]
        return terminus_reply(f"{keystrokes.rstrip()}; echo STEP-$(({following}))-DONE\n", duration=self.duration)


# The solution script a policy types into the sandbox before running it.
SOLUTION_IN_SANDBOX = "/tmp/solve.sh"


def typed_solution(task: Path) -> str:
    """Keystrokes that write the task's solution script into the sandbox and run it."""
    script = (task / "solution" / "solve.sh").read_text()
    return f"cat > {SOLUTION_IN_SANDBOX} <<'POLICY_EOF'\n{script}\nPOLICY_EOF\nbash {SOLUTION_IN_SANDBOX}\n"


def log_triage_steps(task: Path) -> list[str]:
    """Read each service log (one turn each, ~5 KB of output), then write the answer."""
    logs = sorted(p.name for p in (task / "environment" / "app" / "logs").glob("*.log"))
    return [f"cat /app/logs/{name}\n" for name in logs] + [typed_solution(task)]


def staged_build_steps(task: Path) -> list[str]:
    """Run each stage (one turn each, ~5 KB of compiler log); stage 09 fails until the config is
    fixed, so the fix and the rerun are steps of their own."""
    stages = sorted(p.stem for p in (task / "environment" / "app" / "stages").glob("*.sh"))
    steps = [f"cd /app && bash stages/{n}.sh\n" for n in stages]
    fix = "sed -i 's/^codegen=.*/codegen=portable/' /app/build.cfg && cat /app/build.cfg\n"
    at = stages.index("09")
    return [*steps[: at + 1], fix, *steps[at:]]


SOLVING_STEPS = {"log-triage": log_triage_steps, "staged-build": staged_build_steps}


def solving_policy(task: Path, duration: float = 0.3) -> StepwisePolicy:
    """The step-by-step solver of one of the long tasks (datasets/long_tasks)."""
    return StepwisePolicy(SOLVING_STEPS[task.name](task), duration=duration)


class EachLongTask:
    """The step-by-step solver of whichever long task the prompt is about (the first line of its
    instruction, which every prompt of an episode holds, summarizations' included). With `share`
    below 1 it does only that share of the steps and then says it is done: a plan that fails."""

    def __init__(self, tasks: Path, share: float = 1.0, duration: float = 0.3):
        self.policies: dict[str, StepwisePolicy] = {}
        for task in sorted(p for p in tasks.iterdir() if p.name in SOLVING_STEPS):
            steps = SOLVING_STEPS[task.name](task)
            marker = (task / "instruction.md").read_text().splitlines()[0]
            self.policies[marker] = StepwisePolicy(steps[: max(1, int(len(steps) * share))], duration=duration)

    def __call__(self, request: PolicyInput) -> str:
        policy = next((p for marker, p in self.policies.items() if marker in request.prompt), None)
        if policy is None:
            raise KeyError("the prompt matches no long task")
        return policy(request)
