"""Checks what prime-rl's orchestrator hands its trainer against what the fake model produced.

Plain data in, AssertionError out (with what differs and where), so the checker runs without
prime-rl (its own unit test, `test_prime_rl_batches.py`) and on real batches
(`test_prime_rl_orchestrator.py`). Inputs:

- the packed micro-batches of one step (prime-rl's `MicroBatch`: per token `input_ids`,
  `loss_mask`, `advantages`, `inference_logprobs`, `position_ids`; per sequence
  `sequence_lengths`), cut into one `PackedSample` per sequence;
- the orchestrator's episode records (`rollouts/step_N/train/all/traces.jsonl`): which group
  each trace belongs to, whether it errored, the reward Harbor's verifier gave;
- the fake server's generate records (`GenerateRecord`, per session = trace id) and the reward
  each session's scripted plan earns.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harbor_env.testing.inference import GenerateRecord

ADVANTAGE_TOLERANCE = 1e-6  # prime-rl computes advantages in float32


@dataclass(frozen=True)
class PackedSample:
    """One packed sequence of a micro-batch: what the trainer trains on for one branch."""

    step: int
    input_ids: list[int]
    loss_mask: list[bool]
    advantages: list[float]
    logprobs: list[float]
    position_ids: list[int]

    @property
    def sampled_logprobs(self) -> list[float]:
        return [lp for lp, m in zip(self.logprobs, self.loss_mask, strict=False) if m]


@dataclass(frozen=True)
class EpisodeRecord:
    """One trace as the orchestrator logged it."""

    session_id: str  # the trace id, sent to the model server as X-Session-ID
    group_id: str
    ok: bool
    reward: float | None
    task: str


@dataclass(frozen=True)
class StepSummary:
    step: int
    episodes: int  # finished in this step's window, errored ones included
    errored: int
    samples: int
    tokens: int
    sampled_tokens: int
    mean_reward: float  # over the window's scored episodes
    sessions: tuple[str, ...]  # the sessions the step's samples came from


def unpack(step: int, micro_batches: Iterable[Any]) -> list[PackedSample]:
    """Cut packed micro-batches into their sequences (`sequence_lengths`)."""
    samples = []
    for batch in micro_batches:
        lengths = list(batch.sequence_lengths)
        assert sum(lengths) == len(batch.input_ids), f"step {step}: sequence_lengths do not cover the micro-batch"
        start = 0
        for length in lengths:
            end = start + length
            samples.append(
                PackedSample(
                    step=step,
                    input_ids=list(batch.input_ids[start:end]),
                    loss_mask=[bool(m) for m in batch.loss_mask[start:end]],
                    advantages=list(batch.advantages[start:end]),
                    logprobs=list(batch.inference_logprobs[start:end]),
                    position_ids=list(batch.position_ids[start:end]),
                )
            )
            start = end
    return samples


def read_episode_records(run_dir: Path) -> dict[int, list[EpisodeRecord]]:
    """Every trace the orchestrator logged, by the step whose window it finished in."""
    by_step: dict[int, list[EpisodeRecord]] = {}
    for path in sorted((run_dir / "rollouts").glob("step_*/train/all/traces.jsonl")):
        step = int(path.parts[-4].removeprefix("step_"))
        records = []
        for line in path.read_text().splitlines():
            episode = json.loads(line)
            group = (episode.get("group") or {}).get("id", "")
            for trace in episode.get("traces", []):
                task = trace.get("task", {})
                records.append(
                    EpisodeRecord(
                        session_id=trace["id"],
                        group_id=group,
                        ok=bool(trace.get("ok", False)) and bool(episode.get("ok", True)),
                        reward=_reward(trace.get("rewards") or {}),
                        task=str(task.get("name") or task.get("data", {}).get("name", "")),
                    )
                )
        by_step[step] = records
    return by_step


def _reward(rewards: Mapping[str, Any]) -> float | None:
    """A trace record's reward as verifiers sums it (`Trace.reward`: score x weight of each named
    reward); None when scoring did not run."""
    scored = [r for r in rewards.values() if r is not None]
    return sum(r["score"] * r.get("weight", 1.0) for r in scored) if scored else None


Sample = tuple[list[int], list[bool], list[float]]  # token ids, loss mask, logprobs


def expected_samples(session_id: str, calls: Sequence[GenerateRecord]) -> list[Sample]:
    """The samples an episode must become, one per chain of its calls: a call whose prompt
    extends an earlier chain's tokens (prompt and completion) continues the latest such chain,
    any other starts one (a rewritten history: Terminus-2's summarization). A chain is its last
    prompt plus its last completion, every completion's tokens trainable (mask 1, the model's
    logprobs) and every other token (prompts, tool output, chat markup) not (mask 0, logprob 0).
    An episode whose chat only grows is one chain."""
    assert calls, f"session {session_id}: the model never answered it"
    chains: list[Sample] = []
    for call in calls:
        chain = next((c for c in reversed(chains) if call.prompt_ids[: len(c[0])] == c[0]), None)
        if chain is None:
            chain = ([], [], [])
            chains.append(chain)
        ids, mask, logprobs = chain
        context = call.prompt_ids[len(ids) :]
        ids += context + call.completion_ids
        mask += [False] * len(context) + [True] * len(call.completion_ids)
        logprobs += [0.0] * len(context) + list(call.logprobs)
    return chains


def expected_sample(session_id: str, calls: Sequence[GenerateRecord]) -> Sample:
    """The one sample an episode whose chat only grows must become (`expected_samples`)."""
    chains = expected_samples(session_id, calls)
    assert len(chains) == 1, f"session {session_id}: {len(chains)} chains of calls, the chat did not only grow"
    return chains[0]


def _first_difference(got: Sequence, want: Sequence) -> str:
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"position {index}: {a!r} in the batch, {b!r} expected"
    return f"length {len(got)} in the batch, {len(want)} expected"


def _match_session(sample: PackedSample, calls_by_session: Mapping[str, Sequence[GenerateRecord]]) -> str:
    """The session the sample's sampled logprobs come from (they are distinct per session)."""
    sampled = set(sample.sampled_logprobs)
    overlap = {
        session: len(sampled & {lp for call in calls for lp in call.logprobs})
        for session, calls in calls_by_session.items()
    }
    best = max(overlap, key=overlap.__getitem__, default=None)
    assert best is not None and overlap[best] > 0, (
        f"step {sample.step}: a sample's sampled logprobs match no episode the model answered"
    )
    return best


def check_step(
    step: int,
    samples: Sequence[PackedSample],
    records: Iterable[EpisodeRecord],
    window: Sequence[EpisodeRecord],
    calls_by_session: Mapping[str, Sequence[GenerateRecord]],
    planned_rewards: Mapping[str, float],
    errored_sessions: set[str],
    one_sample_per_episode: bool = True,
) -> StepSummary:
    """Check one shipped step; `records` are the whole run's episodes (a group may finish
    across windows), `window` this step's; `errored_sessions` those an injected fault broke.
    Without `one_sample_per_episode` (summarizing agents), an episode ships each of its chains
    of calls (`expected_samples`) once, all of them, each with the episode's advantage."""
    by_session = {r.session_id: r for r in records}
    groups: dict[str, list[EpisodeRecord]] = defaultdict(list)
    for record in by_session.values():
        groups[record.group_id].append(record)

    for record in by_session.values():
        if record.session_id in errored_sessions:
            assert not record.ok, f"session {record.session_id}: an injected fault broke it, yet it is not errored"
        elif record.ok and record.session_id in planned_rewards:
            assert record.reward == planned_rewards[record.session_id], (
                f"session {record.session_id} ({record.task}): reward {record.reward}, "
                f"its plan earns {planned_rewards[record.session_id]} from Harbor's verifier"
            )

    sessions = []
    for index, sample in enumerate(samples):
        where = f"step {step}, sample {index}"
        session = _match_session(sample, calls_by_session)
        where += f" (session {session})"
        assert session not in errored_sessions, f"{where}: the episode an injected fault broke is in the batch"
        record = by_session.get(session)
        assert record is not None, f"{where}: the orchestrator logged no episode for it"
        assert record.ok, f"{where}: an errored episode is in the batch"
        if one_sample_per_episode:
            ids, mask, logprobs = expected_sample(session, calls_by_session[session])
        else:
            chains = expected_samples(session, calls_by_session[session])
            ids, mask, logprobs = next((c for c in chains if c[0] == sample.input_ids), chains[0])
        assert sample.input_ids == ids, (
            f"{where}: tokens differ from the episode's, {_first_difference(sample.input_ids, ids)}"
        )
        assert sample.loss_mask == mask, f"{where}: loss mask differs, {_first_difference(sample.loss_mask, mask)}"
        assert sample.logprobs == logprobs, f"{where}: logprobs differ, {_first_difference(sample.logprobs, logprobs)}"
        assert sample.position_ids == list(range(len(ids))), f"{where}: not one packed sequence (position ids)"

        scored = [r for r in groups[record.group_id] if r.ok]
        rewards = [r.reward for r in scored]
        assert all(r is not None for r in rewards), f"{where}: a scored episode of its group has no reward"
        baseline = sum(rewards) / len(rewards)  # type: ignore[arg-type]
        advantage = record.reward - baseline  # type: ignore[operator]
        for position, (value, trainable) in enumerate(zip(sample.advantages, sample.loss_mask, strict=False)):
            want = advantage if trainable else 0.0
            assert abs(value - want) <= ADVANTAGE_TOLERANCE, (
                f"{where}: advantage {value} at position {position}, expected {want} "
                f"(reward {record.reward} - mean {baseline:.6f} of the group's {len(rewards)} scored episodes)"
            )
        sessions.append(session)

    if one_sample_per_episode:
        assert len(set(sessions)) == len(sessions), f"step {step}: an episode became more than one sample"
    else:
        for session in set(sessions):
            shipped = sorted(s.input_ids for s in samples if _match_session(s, calls_by_session) == session)
            chains = sorted(c[0] for c in expected_samples(session, calls_by_session[session]))
            assert shipped == chains, (
                f"step {step}, session {session}: {len(shipped)} samples shipped, its {len(chains)} chains expected"
            )
    scored_window = [r.reward for r in window if r.ok and r.reward is not None]
    return StepSummary(
        step=step,
        episodes=len(window),
        errored=sum(not r.ok for r in window),
        samples=len(samples),
        tokens=sum(len(s.input_ids) for s in samples),
        sampled_tokens=sum(sum(s.loss_mask) for s in samples),
        mean_reward=sum(scored_window) / len(scored_window) if scored_window else float("nan"),
        sessions=tuple(sessions),
    )


def format_table(rows: Sequence[StepSummary]) -> str:
    lines = [
        "step | episodes | samples | tokens | sampled tokens | mean reward | errored",
        "---- | -------- | ------- | ------ | -------------- | ----------- | -------",
    ]
    lines += [
        f"{r.step:>4} | {r.episodes:>8} | {r.samples:>7} | {r.tokens:>6} | {r.sampled_tokens:>14} | "
        f"{r.mean_reward:>11.3f} | {r.errored:>7}"
        for r in rows
    ]
    return "\n".join(lines)
