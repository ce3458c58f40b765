"""The cheap BOOK candidate rules and the cursor's word tokens, with exact offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hnbooks.suggest import suggest_candidates, suggest_spans, word_spans


def texts_of(text: str) -> list[str]:
    return [text[start:end] for start, end in suggest_spans(text)]


def rules_of(text: str) -> list[tuple[str, str]]:
    return [(c.rule, text[c.start : c.end]) for c in suggest_candidates(text)]


def test_quoted_text_without_the_quotes_and_trailing_comma() -> None:
    text = 'I loved "The Hobbit," and “Snow Crash” and «Solaris» and ‘Ender’s Game’.'
    assert suggest_spans(text) == [(9, 19), (27, 37), (44, 51), (58, 70)]
    assert texts_of(text) == ["The Hobbit", "Snow Crash", "Solaris", "Ender’s Game"]


def test_apostrophes_are_not_quotes() -> None:
    assert texts_of("don't read it, it's dull and 'Dune' isn't") == ["Dune"]


def test_long_quoted_speech_is_not_a_title() -> None:
    text = (
        'he said "this is a very long sentence that nobody would ever use as a book title at all"'
    )
    assert suggest_spans(text) == []


def test_italic_markers() -> None:
    text = "read *Dune* and _Snow Crash_ and <i>Neuromancer</i>, not 2*3*4 or snake_case_name"
    assert rules_of(text) == [
        ("italic", "Dune"),
        ("italic", "Snow Crash"),
        ("italic", "Neuromancer"),
    ]
    assert suggest_spans(text)[0] == (6, 10)


def test_title_case_runs_with_small_words_inside() -> None:
    text = "Have you tried Zen and the Art of Motorcycle Maintenance? It is not about HN and YC."
    assert rules_of(text) == [("title-case", "Zen and the Art of Motorcycle Maintenance")]


def test_a_run_starting_a_sentence_is_also_proposed_without_its_first_word() -> None:
    text = "The Lord of the Rings is long. I think so."
    assert texts_of(text) == ["The Lord of the Rings", "Lord of the Rings"]


def test_title_before_by_author_and_not_the_author() -> None:
    text = "my favourite is Dune by Frank Herbert, and also Blindsight by Peter Watts"
    assert rules_of(text) == [("by-author", "Dune"), ("by-author", "Blindsight")]
    assert suggest_spans(text) == [(16, 20), (48, 58)]


def test_by_author_with_a_multi_word_title() -> None:
    text = "I read Thinking Fast and Slow by Daniel Kahneman."
    assert rules_of(text) == [("title-case", "Thinking Fast and Slow")]


def test_goodreads_amazon_and_isbn() -> None:
    text = (
        "see https://www.goodreads.com/book/show/5907.The_Hobbit and"
        " https://www.amazon.com/G%C3%B6del-Escher/dp/0465026567/ref=sr_1_1."
        " ISBN 978-0-261-10221-7, 9780261102217 and 9780261102218"
    )
    assert rules_of(text) == [
        ("link", "https://www.goodreads.com/book/show/5907.The_Hobbit"),
        ("link", "https://www.amazon.com/G%C3%B6del-Escher/dp/0465026567/ref=sr_1_1"),
        ("isbn", "978-0-261-10221-7"),
        ("isbn", "9780261102217"),
    ]


def test_same_range_from_two_rules_is_one_candidate() -> None:
    text = 'I loved "The Hobbit" a lot'
    assert rules_of(text) == [("quoted", "The Hobbit")]


def test_offsets_are_python_string_offsets_for_any_unicode() -> None:
    text = "😀👩‍👩‍👧 I loved “Gödel Escher Bach” 日本語 *Café Society*"
    spans = suggest_spans(text)
    assert [text[s:e] for s, e in spans] == ["Gödel Escher Bach", "Café Society"]
    assert spans == [(16, 33), (40, 52)]  # the ZWJ family emoji is 5 code points


def test_combining_characters_stay_inside_the_span() -> None:
    text = "read “Cafe\u0301 Society” now"
    assert texts_of(text) == ["Cafe\u0301 Society"]


def test_word_spans() -> None:
    text = 'I’ve read "Catch-22", U.S. 3.5 naïve cafe\u0301 😀 👩‍👩‍👧 日本語 5907.The_Hobbit'
    assert [text[s:e] for s, e in word_spans(text)] == [
        "I’ve", "read", "Catch-22", "U.S", "3.5", "naïve", "cafe\u0301", "😀", "👩‍👩‍👧",
        "日", "本", "語", "5907", "The", "Hobbit",
    ]  # fmt: skip


def test_word_spans_of_empty_and_punctuation_only() -> None:
    assert word_spans("") == []
    assert word_spans(" ... -- !? ") == []


@given(st.text(max_size=200))
def test_spans_are_sorted_unique_and_inside_the_text(text: str) -> None:
    spans = suggest_spans(text)
    assert spans == sorted(set(spans))
    assert all(0 <= start < end <= len(text) for start, end in spans)
    words = word_spans(text)
    assert all(0 <= start < end <= len(text) for start, end in words)
    assert all(a[1] <= b[0] for a, b in zip(words, words[1:]))


@pytest.mark.parametrize("text", ["", "no candidates here at all", "ALL CAPS SHOUTING HERE"])
def test_nothing_to_suggest(text: str) -> None:
    assert suggest_spans(text) == []
