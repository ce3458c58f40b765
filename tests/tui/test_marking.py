"""`SpanMarker`'s jump mode, both-end grow/shrink, find and what an accept keeps: plain Python."""

from __future__ import annotations

from hnbooks.store.records import Span
from hnbooks.suggest import word_spans
from hnbooks.tui.marking import SpanMarker, jump_hints

TEXT = 'I finally read "The Hobbit" last winter and loved it.'


def marker(text: str = TEXT, candidates: list[tuple[int, int]] | None = None) -> SpanMarker:
    return SpanMarker(word_spans(text), candidates or [])


def selected(m: SpanMarker, text: str = TEXT) -> str | None:
    selection = m.selection()
    return None if selection is None else text[selection[0] : selection[1]]


def hint_of(m: SpanMarker, word_index: int) -> str:
    return dict(m.jump_targets())[word_index]


def test_jump_places_the_start_then_the_end_by_hint_labels() -> None:
    m = marker()
    assert m.begin_jump() and m.jump_stage == "start"
    # Every word has its hint, in word order: jump_hints over all words.
    assert [label for _, label in m.jump_targets()] == jump_hints(len(m.words))
    the = 3  # I finally read "The
    for letter in hint_of(m, the):
        assert m.jump_key(letter)
    assert m.jump_stage == "end" and selected(m) == "The"
    # The end hints are relabelled from the start onward: the start word itself takes the first.
    assert [label for _, label in m.jump_targets()] == jump_hints(len(m.words) - the)
    assert m.jump_targets()[0] == (the, jump_hints(1)[0])
    for letter in hint_of(m, the + 1):
        assert m.jump_key(letter)
    assert m.jump_stage is None and selected(m) == "The Hobbit"
    assert m.mark("BOOK") == Span(16, 26, "BOOK")


def test_jump_waits_for_the_second_letter_of_a_two_letter_label() -> None:
    words = " ".join(f"w{n}" for n in range(40))
    m = marker(words)
    m.begin_jump()
    last_label = hint_of(m, 39)
    assert len(last_label) == 2
    assert m.jump_key(last_label[0]) and m.jump_stage == "start" and m.jump_typed == last_label[0]
    assert m.jump_key(last_label[1]) and m.jump_stage == "end"
    assert selected(m, words) == "w39"


def test_a_letter_no_label_starts_with_changes_nothing() -> None:
    m = marker("one two")
    m.begin_jump()
    assert not m.jump_key("z")
    assert m.jump_stage == "start" and m.jump_typed == "" and m.selection() is None
    assert not marker("").begin_jump()


def test_end_jump_keeps_the_start_word_selected() -> None:
    m = marker()
    m.begin_jump()
    m.jump_key(hint_of(m, 1))
    m.end_jump()
    assert m.jump_stage is None and m.jump_targets() == []
    assert selected(m) == "finally" and m.pending_selection() is not None


def test_the_other_end_grows_and_shrinks_by_a_word() -> None:
    m = marker()
    m.select_words(3, 4)  # The Hobbit, the cursor (moving end) on Hobbit
    m.extend_start(-1)
    assert selected(m) == 'read "The Hobbit'
    m.extend(1)
    assert selected(m) == 'read "The Hobbit" last'
    m.extend_start(1)
    m.extend_start(1)
    assert selected(m) == 'Hobbit" last'
    # Never past the moving end: the selection keeps at least its last word.
    for _ in range(5):
        m.extend_start(1)
    assert selected(m) == "last"
    m.extend_start(-20)
    assert selected(m) == 'I finally read "The Hobbit" last'


def test_the_other_end_of_a_picked_candidate() -> None:
    m = marker(candidates=[(16, 26)])
    assert m.cycle_candidate(1)
    m.extend_start(-1)
    assert m.candidate_index is None and selected(m) == 'read "The Hobbit'


def test_find_selects_the_words_of_the_next_match_and_wraps() -> None:
    m = marker()
    assert m.find(TEXT, "hob")
    assert selected(m) == "Hobbit"
    assert m.find(TEXT, "the hob")
    assert selected(m) == "The Hobbit"
    # From after the first match, the next one; none after it: round to the start.
    text = "it is it"
    m = marker(text)
    assert m.find(text, "it", 1) and selected(m, text) == "it" and m.cursor == 2
    assert m.find(text, "it", 7) and m.cursor == 0
    assert not m.find(text, "zebra") and m.cursor == 0
    assert not m.find(text, "")


def test_accept_keeps_a_picked_candidate_or_an_extended_selection() -> None:
    m = marker(candidates=[(16, 26)])
    m.cycle_candidate(1)
    assert m.spans_with_pending("BOOK") == [Span(16, 26, "BOOK")]
    assert m.spans == []  # nothing marked until the answer is given
    m = marker()
    m.move(1)
    m.move(1)
    # A bare cursor is not a selection to keep.
    assert m.spans_with_pending("BOOK") == []
    m.extend(1)
    assert m.spans_with_pending("BOOK") == [Span(2, 14, "BOOK")]
    # A marked span the pending selection overlaps is replaced, as enter would.
    m = marker()
    m.select_words(3, 3)
    m.mark("BOOK")
    m.select_words(3, 4)
    assert m.spans_with_pending("AUTHOR") == [Span(16, 26, "AUTHOR")]


def test_clicked_offsets_map_to_words_and_candidates() -> None:
    m = marker(candidates=[(16, 26)])
    assert m.word_index_at(17) == 3 and m.word_index_at(15) is None
    assert m.candidate_at(20) == 0 and m.candidate_at(27) is None
    m.pick_candidate(0)
    assert selected(m) == "The Hobbit"


def test_tab_goes_through_the_candidates_in_their_ranked_order() -> None:
    # Ranked, not by position: the likeliest (here the later one) first, wherever the cursor is.
    m = marker(candidates=[(28, 39), (16, 26)])
    m.move(1)
    assert m.cycle_candidate(1) and selected(m) == "last winter"
    m.mark("BOOK")
    # After a mark, the next tab goes on to the next in rank, then round to the first.
    assert m.cycle_candidate(1) and selected(m) == "The Hobbit"
    assert m.cycle_candidate(1) and selected(m) == "last winter"
    m = marker(candidates=[(28, 39), (16, 26)])
    assert m.cycle_candidate(-1) and selected(m) == "The Hobbit"


def test_a_screen_cell_maps_back_to_the_offset_drawn_there() -> None:
    from hnbooks.tui.render import offset_at, wrapped_row

    text = "aaa bbb ccc\nddd eeeeeeeeeeeeee f"
    width = 7
    # Rows: "aaa bbb " · "ccc" · "ddd " · "eeeeeee" · "eeeeeee" · "f".
    assert offset_at(text, 1, 0, width) == 8
    assert offset_at(text, 1, 5, width) == 10  # past the row's end: its last character
    assert offset_at(text, 2, 1, width) == 13
    assert offset_at(text, 4, 3, width) == 26
    assert offset_at(text, 40, 0, width) == len(text) - 1
    for row in range(6):
        for column in range(width):
            assert wrapped_row(text, offset_at(text, row, column, width), width) == row
    # Wide characters take two cells each.
    assert offset_at("日本語 text", 0, 3, 20) == 1
