import sys
import unittest

# Import the package under test from /app (appended, so /app cannot shadow
# standard-library modules).
sys.path.append("/app")

from textstats import (  # noqa: E402
    average_word_length,
    sentence_count,
    tokenize,
    top_words,
    word_count,
)


class HiddenTokenizeTests(unittest.TestCase):
    def test_lowercase(self):
        self.assertEqual(tokenize("ABC Def gHi"), ["abc", "def", "ghi"])

    def test_apostrophes(self):
        self.assertEqual(tokenize("'Tis the DOG'S bowl''"),
                         ["tis", "the", "dog's", "bowl"])

    def test_digits_and_lone_quotes(self):
        self.assertEqual(tokenize("Route 66 ' '' x"), ["route", "66", "x"])

    def test_word_count(self):
        self.assertEqual(word_count("Alpha, beta; GAMMA."), 3)
        self.assertEqual(word_count(""), 0)


class HiddenTopWordsTests(unittest.TestCase):
    def test_case_insensitive_counting(self):
        self.assertEqual(top_words("Go go GO stop Stop", 2),
                         [("go", 3), ("stop", 2)])

    def test_ties_alphabetical(self):
        self.assertEqual(top_words("zeta yak xray yak zeta xray w", 4),
                         [("xray", 2), ("yak", 2), ("zeta", 2), ("w", 1)])

    def test_default_n(self):
        self.assertEqual(top_words("d c b a a"), [("a", 2), ("b", 1), ("c", 1)])

    def test_n_zero_and_negative(self):
        self.assertEqual(top_words("a b c", 0), [])
        self.assertEqual(top_words("a b c", -1), [])

    def test_empty_text(self):
        self.assertEqual(top_words("", 3), [])

    def test_returns_tuples(self):
        result = top_words("b a b", 2)
        self.assertEqual(result, [("b", 2), ("a", 1)])
        self.assertTrue(all(isinstance(item, tuple) for item in result))


class HiddenAverageTests(unittest.TestCase):
    def test_rounding(self):
        self.assertEqual(average_word_length("abc ab ab"), 2.33)

    def test_no_words(self):
        self.assertEqual(average_word_length(""), 0.0)
        self.assertEqual(average_word_length("?! ..."), 0.0)

    def test_lowercase_does_not_change_length(self):
        self.assertEqual(average_word_length("HELLO there"), 5.0)


class HiddenSentenceTests(unittest.TestCase):
    def test_sentences(self):
        self.assertEqual(sentence_count("One. Two! Three? Four"), 4)
        self.assertEqual(sentence_count("Wait... what?!"), 2)
        self.assertEqual(sentence_count(""), 0)


if __name__ == "__main__":
    unittest.main()
