"""The hidden checks of /app/textstats.

The agent's package runs in a process of its own, as `nobody`, and only the repr of each answer
comes back: its code never runs in the tests' process (where `os._exit(0)` on import would end
unittest with a pass, or a patch would change what the tests compare), and it cannot read the
expected answers (test.sh makes /tests readable by root only)."""

import ast
import json
import subprocess
import sys
import unittest

# (function, arguments, expected answer)
CASES = {
    "lowercase": ("tokenize", ["ABC Def gHi"], ["abc", "def", "ghi"]),
    "apostrophes": ("tokenize", ["'Tis the DOG'S bowl''"], ["tis", "the", "dog's", "bowl"]),
    "digits_and_lone_quotes": ("tokenize", ["Route 66 ' '' x"], ["route", "66", "x"]),
    "word_count": ("word_count", ["Alpha, beta; GAMMA."], 3),
    "word_count_empty": ("word_count", [""], 0),
    "case_insensitive_counting": ("top_words", ["Go go GO stop Stop", 2], [("go", 3), ("stop", 2)]),
    "ties_alphabetical": ("top_words", ["zeta yak xray yak zeta xray w", 4], [("xray", 2), ("yak", 2), ("zeta", 2), ("w", 1)]),
    "default_n": ("top_words", ["d c b a a"], [("a", 2), ("b", 1), ("c", 1)]),
    "n_zero": ("top_words", ["a b c", 0], []),
    "n_negative": ("top_words", ["a b c", -1], []),
    "empty_text": ("top_words", ["", 3], []),
    "returns_tuples": ("top_words", ["b a b", 2], [("b", 2), ("a", 1)]),
    "rounding": ("average_word_length", ["abc ab ab"], 2.33),
    "no_words": ("average_word_length", [""], 0.0),
    "only_punctuation": ("average_word_length", ["?! ..."], 0.0),
    "lowercase_does_not_change_length": ("average_word_length", ["HELLO there"], 5.0),
    "sentences": ("sentence_count", ["One. Two! Three? Four"], 4),
    "sentences_ellipsis": ("sentence_count", ["Wait... what?!"], 2),
    "sentences_empty": ("sentence_count", [""], 0),
}
# Run in isolated mode (-I) from /, with /app first on its path: the package under test.
ANSWER_EACH = """
import importlib, json, sys
sys.path.insert(0, "/app")
module = importlib.import_module("textstats")
answers = []
for name, args in json.load(sys.stdin):
    try:
        answers.append(repr(getattr(module, name)(*args)))
    except Exception as exc:
        answers.append("raised " + type(exc).__name__)
print(json.dumps(answers))
"""
_answers = {}


def answer(case):
    """The agent's answer to `case`, read back from its repr (all cases run in one process, once)."""
    if not _answers:
        calls = [[name, args] for name, args, _ in CASES.values()]
        run = subprocess.run(
            [sys.executable, "-I", "-B", "-c", ANSWER_EACH],
            input=json.dumps(calls),
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            user="nobody",
            group="nogroup",
            extra_groups=[],
        )
        if run.returncode != 0:
            raise AssertionError("textstats could not be run: " + run.stderr[-2000:])
        _answers.update(zip(CASES, json.loads(run.stdout.strip().splitlines()[-1])))
    try:
        return ast.literal_eval(_answers[case])
    except (ValueError, SyntaxError):
        return _answers[case]  # not a plain value: compared as text, so never equal


class HiddenTests(unittest.TestCase):
    def test_each_case(self):
        for case, (_, _, expected) in CASES.items():
            with self.subTest(case):
                self.assertEqual(answer(case), expected)


if __name__ == "__main__":
    unittest.main()
