import unittest

from textstats import (
    average_word_length,
    sentence_count,
    tokenize,
    top_words,
    word_count,
)


class TokenizeTests(unittest.TestCase):
    def test_lowercase_and_punctuation(self):
        self.assertEqual(tokenize("Hello, World! It's 'fine'."),
                         ["hello", "world", "it's", "fine"])

    def test_empty(self):
        self.assertEqual(tokenize(""), [])
        self.assertEqual(word_count("  ... "), 0)

    def test_word_count(self):
        self.assertEqual(word_count("One two  three\nfour"), 4)


class TopWordsTests(unittest.TestCase):
    def test_counts_are_case_insensitive(self):
        self.assertEqual(top_words("The cat and the hat. THE end.", 1),
                         [("the", 3)])

    def test_ties_are_alphabetical(self):
        self.assertEqual(top_words("pear apple pear apple fig", 3),
                         [("apple", 2), ("pear", 2), ("fig", 1)])

    def test_n_larger_than_vocabulary(self):
        self.assertEqual(top_words("b a", 5), [("a", 1), ("b", 1)])


class AverageAndSentenceTests(unittest.TestCase):
    def test_average(self):
        self.assertEqual(average_word_length("ab abcd"), 3.0)
        self.assertEqual(average_word_length("a bb bb"), 1.67)

    def test_average_no_words(self):
        self.assertEqual(average_word_length("!!!"), 0.0)

    def test_sentences(self):
        self.assertEqual(sentence_count("Hi. How are you?! Fine"), 3)
        self.assertEqual(sentence_count("..."), 0)


if __name__ == "__main__":
    unittest.main()
