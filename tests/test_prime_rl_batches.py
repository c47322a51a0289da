"""The batch checker of the prime-rl integration run bites: a wrong token, a shifted logprob, a
prompt token marked trainable, an episode split in two, an errored episode in the batch or
scored into its group's mean each fail it. Runs without prime-rl (plain data)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from prime_rl_batches import EpisodeRecord, check_step, format_table, read_episode_records, unpack

from harbor_env.testing.inference import GenerateRecord


def call(session: str, prompt: list[int], completion: list[int], logprobs: list[float]) -> GenerateRecord:
    return GenerateRecord(session, "r16-a32", prompt, completion, logprobs, "stop")


# One GRPO group: a solves (reward 1), b and d fail (0), c errored after one model call.
CALLS = {
    "a": [call("a", [1, 2, 3], [10, 11], [-0.1, -0.2]), call("a", [1, 2, 3, 10, 11, 4, 5], [12], [-0.3])],
    "b": [call("b", [1, 2, 3], [20], [-0.4]), call("b", [1, 2, 3, 20, 6], [21, 22], [-0.5, -0.6])],
    "c": [call("c", [1, 2, 3], [30], [-0.7])],
    "d": [call("d", [1, 2, 3], [40, 41], [-0.8, -0.9])],
}
RECORDS = [
    EpisodeRecord("a", "g", True, 1.0, "t"),
    EpisodeRecord("b", "g", True, 0.0, "t"),
    EpisodeRecord("c", "g", False, None, "t"),
    EpisodeRecord("d", "g", True, 0.0, "t"),
]
PLANNED = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
ERRORED = {"c"}
HI, LO = 1 - 1 / 3, 0 - 1 / 3  # reward - mean of the three scored episodes

# What prime-rl should ship, written out by hand: per sequence ids, mask, logprobs, advantages.
GOOD = [
    ([1, 2, 3, 10, 11, 4, 5, 12], [0, 0, 0, 1, 1, 0, 0, 1], [0, 0, 0, -0.1, -0.2, 0, 0, -0.3], HI),
    ([1, 2, 3, 20, 6, 21, 22], [0, 0, 0, 1, 0, 1, 1], [0, 0, 0, -0.4, 0, -0.5, -0.6], LO),
    ([1, 2, 3, 40, 41], [0, 0, 0, 1, 1], [0, 0, 0, -0.8, -0.9], LO),
]


def micro_batch(sequences: list[tuple]) -> SimpleNamespace:
    """A packed micro-batch as prime-rl's MicroBatch carries it (the fields the checker reads)."""
    batch = SimpleNamespace(
        input_ids=[], loss_mask=[], advantages=[], inference_logprobs=[], position_ids=[], sequence_lengths=[]
    )
    for ids, mask, logprobs, advantage in sequences:
        batch.input_ids += ids
        batch.loss_mask += [bool(m) for m in mask]
        batch.advantages += [advantage if m else 0.0 for m in mask]
        batch.inference_logprobs += [float(lp) for lp in logprobs]
        batch.position_ids += list(range(len(ids)))
        batch.sequence_lengths.append(len(ids))
    return batch


def check(sequences: list[tuple], records: list[EpisodeRecord] = RECORDS):
    return check_step(1, unpack(1, [micro_batch(sequences)]), records, records, CALLS, PLANNED, ERRORED)


def test_a_faithful_batch_passes() -> None:
    summary = check(GOOD)
    assert (summary.samples, summary.tokens, summary.sampled_tokens) == (3, 20, 8)
    assert (summary.episodes, summary.errored, summary.sessions) == (4, 1, ("a", "b", "d"))
    assert summary.mean_reward == pytest.approx(1 / 3)
    assert "   1 |        4 |       3 |     20 |" in format_table([summary])


def test_a_wrong_token_fails() -> None:
    ids, mask, logprobs, advantage = GOOD[0]
    with pytest.raises(AssertionError, match="tokens differ.*position 4: 99 in the batch, 11 expected"):
        check([(ids[:4] + [99] + ids[5:], mask, logprobs, advantage), *GOOD[1:]])


def test_a_shifted_logprob_fails() -> None:
    ids, mask, _, advantage = GOOD[0]
    shifted = [0, 0, 0, 0, -0.1, -0.2, 0, -0.3]  # the first completion's logprobs one token late
    with pytest.raises(AssertionError, match="logprobs differ.*position 3"):
        check([(ids, mask, shifted, advantage), *GOOD[1:]])


def test_a_trainable_prompt_token_fails() -> None:
    ids, _, logprobs, advantage = GOOD[1]
    with pytest.raises(AssertionError, match="loss mask differs.*position 4"):
        check([GOOD[0], (ids, [0, 0, 0, 1, 1, 1, 1], logprobs, advantage), GOOD[2]])


def test_a_reward_scored_for_the_errored_episode_fails() -> None:
    # The errored episode counted as reward 0: the group's mean would be 1/4, not 1/3.
    counted = [
        (ids, mask, logprobs, reward - 0.25) for (ids, mask, logprobs, _), reward in zip(GOOD, (1, 0, 0), strict=False)
    ]
    with pytest.raises(AssertionError, match="advantage 0.75 at position 3, expected 0.66"):
        check(counted)
    # ... or logged as a scored episode although the fault broke it.
    scored = [r if r.session_id != "c" else EpisodeRecord("c", "g", True, 0.0, "t") for r in RECORDS]
    with pytest.raises(AssertionError, match="injected fault broke it, yet it is not errored"):
        check(GOOD, scored)


def test_the_errored_episode_in_the_batch_fails() -> None:
    with pytest.raises(AssertionError, match="injected fault broke is in the batch"):
        check([*GOOD, ([1, 2, 3, 30], [0, 0, 0, 1], [0, 0, 0, -0.7], 0.0)])


def test_an_episode_split_into_samples_fails() -> None:
    first_turn = ([1, 2, 3, 10, 11], [0, 0, 0, 1, 1], [0, 0, 0, -0.1, -0.2], HI)
    with pytest.raises(AssertionError, match="tokens differ"):
        check([first_turn, *GOOD])


def test_a_reward_other_than_the_verifiers_fails() -> None:
    wrong = [r if r.session_id != "b" else EpisodeRecord("b", "g", True, 0.5, "t") for r in RECORDS]
    with pytest.raises(AssertionError, match=r"reward 0.5, its plan earns 0.0"):
        check(GOOD, wrong)


def test_episode_records_are_read_as_the_orchestrator_writes_them(tmp_path: Path) -> None:
    folder = tmp_path / "rollouts" / "step_2" / "train" / "all"
    folder.mkdir(parents=True)
    episodes = [
        {
            "group": {"id": "g"},
            "ok": True,
            "traces": [
                {
                    "id": "a",
                    "ok": True,
                    "task": {"data": {"name": "t"}},
                    "rewards": {"reward": {"score": 0.5, "weight": 2.0}},
                }
            ],
        },
        {
            "group": {"id": "g"},
            "ok": False,
            "traces": [{"id": "c", "ok": False, "task": {"data": {"name": "t"}}, "rewards": {"reward": None}}],
        },
    ]
    (folder / "traces.jsonl").write_text("".join(json.dumps(e) + "\n" for e in episodes))
    assert read_episode_records(tmp_path) == {
        2: [EpisodeRecord("a", "g", True, 1.0, "t"), EpisodeRecord("c", "g", False, None, "t")]
    }


# A summarizing episode: turn 1, a summary call extending it, a questions call on a fresh chat,
# and the continued chat (a rewritten history), which continues with another turn.
SUMMARIZED = {
    "s": [
        call("s", [1, 2], [10], [-0.1]),
        call("s", [1, 2, 10, 3], [11], [-0.2]),  # the summary: extends turn 1
        call("s", [5], [12], [-0.3]),  # the questions: a fresh chat
        call("s", [1, 6, 12, 7], [13], [-0.4]),  # the continued chat: a new chain
        call("s", [1, 6, 12, 7, 13, 8], [14], [-0.5]),  # and its next turn
    ],
    "f": [call("f", [1, 2], [20], [-0.6])],
}
SUMMARIZED_RECORDS = [EpisodeRecord("s", "g", True, 1.0, "t"), EpisodeRecord("f", "g", True, 0.0, "t")]
SUMMARIZED_SAMPLES = [
    ([1, 2, 10, 3, 11], [0, 0, 1, 0, 1], [0, 0, -0.1, 0, -0.2], 0.5),
    ([5, 12], [0, 1], [0, -0.3], 0.5),
    ([1, 6, 12, 7, 13, 8, 14], [0, 0, 0, 0, 1, 0, 1], [0, 0, 0, 0, -0.4, 0, -0.5], 0.5),
    ([1, 2, 20], [0, 0, 1], [0, 0, -0.6], -0.5),
]


def check_summarized(sequences: list[tuple]):
    return check_step(
        1,
        unpack(1, [micro_batch(sequences)]),
        SUMMARIZED_RECORDS,
        SUMMARIZED_RECORDS,
        SUMMARIZED,
        {"s": 1.0, "f": 0.0},
        set(),
        one_sample_per_episode=False,
    )


def test_a_summarized_episode_ships_each_chain_once_with_its_advantage() -> None:
    assert check_summarized(SUMMARIZED_SAMPLES).sessions == ("s", "s", "s", "f")
    with pytest.raises(AssertionError, match="2 samples shipped, its 3 chains expected"):
        check_summarized([SUMMARIZED_SAMPLES[0], *SUMMARIZED_SAMPLES[2:]])  # the questions call left out
    with pytest.raises(AssertionError, match="4 samples shipped, its 3 chains expected"):
        check_summarized([SUMMARIZED_SAMPLES[1], *SUMMARIZED_SAMPLES])  # one chain twice
    ids, mask, logprobs, _ = SUMMARIZED_SAMPLES[1]
    with pytest.raises(AssertionError, match="advantage -0.5 at position 1, expected 0.5"):
        check_summarized([SUMMARIZED_SAMPLES[0], (ids, mask, logprobs, -0.5), *SUMMARIZED_SAMPLES[2:]])
    with pytest.raises(AssertionError, match="3 chains of calls, the chat did not only grow"):  # the default rule
        check_step(1, unpack(1, [micro_batch(SUMMARIZED_SAMPLES)]), SUMMARIZED_RECORDS, [], SUMMARIZED, {}, set())
