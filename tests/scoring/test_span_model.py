"""The span model: token states with `str` offsets, training on span answers, calibrated suggestions,
the cold start, and a round storing suggestions that the TUI's queue record carries."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hnbooks.scoring.encoder import Encoder, TokenStates
from hnbooks.scoring.job import RoundConfig, run_round
from hnbooks.scoring.pool import ArrayPool
from hnbooks.scoring.spans import (
    RULE_PRIOR,
    LabelSpanModel,
    SpanExample,
    SpanModel,
    SpanSuggester,
    examples_from_answers,
    text_features,
    train_span_model,
    word_states,
)
from hnbooks.store.db import Store
from hnbooks.store.records import BatchEntry, NewAnswer, Span
from hnbooks.suggest import suggest_candidates, word_spans
from hnbooks.tui.session import shown_from_queue
from tests.helpers import publish, store_with_texts

UNICODE_TEXTS = [
    'I loved 三体 by 刘慈欣 😀, then read "The Dark Forest" 👩‍👩‍👧 twice.',
    "Cafe\u0301 na\u0131\u0308ve e\u0301te\u0301: Gödel, Escher, Bach 🇫🇷 is long.",
    "🙂" * 5 + " plain words " + "語" * 3,
]
DIMENSION = 16
TITLES = ["Dune", "Snow Crash", "The Hobbit", "Neuromancer", "Blindsight", "Anathem", "Ubik"]
FRAMES = [
    "I just finished reading {} and loved it.",
    "Has anyone here read {}? It changed how I think.",
    "My favourite is still {} after all these years.",
    "Try {}, it is short and worth it.",
]
DISTRACTORS = [
    "The New York build server at Google broke again today.",
    "We moved from Postgres to SQLite and it was fine.",
    "Ask HN: what laptop do you use for Linux?",
]


def word_vector(word: str) -> np.ndarray:
    digest = hashlib.sha256(word.lower().encode()).digest()
    return np.frombuffer(digest[: DIMENSION * 2], dtype=np.uint8)[:DIMENSION].astype(np.float32)


def fake_token_states(texts: Sequence[str]) -> list[TokenStates]:
    """One 'token' per word with a vector fixed by the word: deterministic, no model."""
    out = []
    for text in texts:
        words = word_spans(text)
        offsets = np.array(words, dtype=np.int64).reshape(-1, 2)
        states = np.array([word_vector(text[s:e]) for s, e in words], dtype=np.float32)
        out.append(TokenStates(offsets, states.reshape(-1, DIMENSION)))
    return out


def title_texts(count: int, seed: int) -> list[SpanExample]:
    rng = np.random.default_rng(seed)
    examples = []
    for n in range(count):
        if n % 4 == 3:
            examples.append(SpanExample(DISTRACTORS[n % len(DISTRACTORS)], ()))
            continue
        title = TITLES[int(rng.integers(len(TITLES)))]
        frame = FRAMES[int(rng.integers(len(FRAMES)))]
        start = frame.index("{}")
        examples.append(SpanExample(frame.format(title), ((start, start + len(title)),)))
    return examples


def trained(count: int = 48, seed: int = 0) -> LabelSpanModel:
    examples = title_texts(count, seed)
    features = [
        text_features(e.text, s)
        for e, s in zip(examples, fake_token_states([e.text for e in examples]), strict=True)
    ]
    model = train_span_model("BOOK", examples, features)
    assert model is not None
    return model


def test_token_states_offsets_index_the_python_str(tiny_model_dir: Path) -> None:
    encoder = Encoder(tiny_model_dir, device="cpu")
    long_text = " ".join(f"word{n} 😀 三" for n in range(200))
    texts = [*UNICODE_TEXTS, long_text, ""]
    results = encoder.token_states(texts)
    assert len(results) == len(texts)
    for text, result in zip(texts, results, strict=True):
        assert result.states.shape == (len(result.offsets), encoder.dimension)
        assert result.states.dtype == np.float32
        for start, end in result.offsets.tolist():
            assert 0 <= start < end <= len(text)
            piece = text[start:end]
            assert piece.strip() == piece and piece
        # In text order and never overlapping, across the windows of a long text too.
        assert (result.offsets[1:, 0] >= result.offsets[:-1, 1]).all()
    # The long text overflows the tiny model's 64 tokens: later windows reach its very end.
    assert int(results[3].offsets[-1, 1]) == len(long_text)
    assert len(results[3].offsets) > encoder.max_length
    assert results[4].offsets.shape == (0, 2)


def test_each_word_gets_the_mean_of_its_tokens() -> None:
    text = "Snow Crash!"
    states = TokenStates(
        np.array([[0, 2], [2, 4], [5, 10], [10, 11]]),
        np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [9.0, 9.0]], dtype=np.float32),
    )
    vectors = word_states(word_spans(text), states)
    assert vectors.tolist() == [[2.0, 0.0], [0.0, 5.0]]


def test_untrained_labels_get_the_rules_alone() -> None:
    def never(texts: Sequence[str]) -> list[TokenStates]:
        raise AssertionError("the cold start needs no encoder")

    text = 'I read "The Hobbit" and Snow Crash by Neal Stephenson.'
    [suggestions] = SpanModel(["BOOK"]).suggest([text], never)
    assert [(s.start, s.end) for s in suggestions] == [
        (c.start, c.end) for c in suggest_candidates(text)
    ]
    assert {s.score for s in suggestions} == {RULE_PRIOR}
    assert {s.source for s in suggestions} == {"rule"}


def test_the_model_learns_the_marked_spans_and_is_calibrated() -> None:
    model = trained()
    held_out = title_texts(24, seed=7)
    features = [
        text_features(e.text, s)
        for e, s in zip(held_out, fake_token_states([e.text for e in held_out]), strict=True)
    ]
    hits = shown = gold = 0
    for example, feature in zip(held_out, features, strict=True):
        suggestions = model.suggest(feature)
        assert all(0.0 <= s.score <= 1.0 for s in suggestions)
        assert [s.score for s in suggestions] == sorted(
            (s.score for s in suggestions), reverse=True
        )
        hits += sum((s.start, s.end) in example.spans for s in suggestions)
        shown += len(suggestions)
        gold += len(example.spans)
    assert hits / gold >= 0.8
    assert hits / shown >= 0.6
    # Distractors' capitalised runs ("The New York") are rule candidates the marks never chose.
    distractor = text_features(DISTRACTORS[0], fake_token_states([DISTRACTORS[0]])[0])
    assert all(s.score < 0.5 for s in model.ranked(distractor))


def test_a_stored_model_suggests_what_it_did_before_storing() -> None:
    model = trained(count=24)
    copy = LabelSpanModel.from_bytes(model.to_bytes())
    [example] = title_texts(1, seed=3)
    features = text_features(example.text, fake_token_states([example.text])[0])
    assert copy.ranked(features) == model.ranked(features)
    with pytest.raises(ValueError):
        LabelSpanModel.from_bytes(b"\x80\x05N.")


def test_no_marked_span_trains_nothing() -> None:
    examples = [SpanExample(text, ()) for text in DISTRACTORS]
    features = [
        text_features(e.text, s)
        for e, s in zip(examples, fake_token_states(DISTRACTORS), strict=True)
    ]
    assert train_span_model("BOOK", examples, features) is None


def test_examples_come_from_current_span_answers(db_path: Path) -> None:
    texts = [
        "I read Dune.",
        "Nothing here.",
        "Rejected text.",
        "Ignored text.",
        "Asked about BOOK.",
    ]
    store, ids = store_with_texts(db_path, texts)
    span = NewAnswer("ann", "accept", spans=(Span(7, 11, "BOOK"),), view_id="ner_manual")
    store.record_answer(ids[0], span)
    store.record_answer(ids[1], NewAnswer("ann", "accept", view_id="ner_manual"))
    store.record_answer(ids[2], NewAnswer("ann", "reject", view_id="ner_manual"))
    store.record_answer(ids[3], NewAnswer("ann", "ignore", view_id="ner_manual"))
    store.record_answer(ids[4], NewAnswer("ann", "reject", label="BOOK"))
    examples = examples_from_answers(store.current_answers_with_items(), "BOOK")
    assert examples == [
        SpanExample("I read Dune.", ((7, 11),)),
        SpanExample("Nothing here.", ()),
        SpanExample("Rejected text.", ()),
        SpanExample("Asked about BOOK.", ()),
    ]
    # Another label: the marked text has no span of it.
    assert examples_from_answers(store.current_answers_with_items(), "MOVIE")[0].spans == ()


def test_a_round_stores_suggestions_the_queue_record_and_the_tui_carry(db_path: Path) -> None:
    # Numbered: equal texts would merge into one item on import.
    examples = [SpanExample(f"{e.text} ({n})", e.spans) for n, e in enumerate(title_texts(40, 1))]
    pool_texts = [f"{e.text} [{n}]" for n, e in enumerate(title_texts(30, seed=2))]
    store, ids = store_with_texts(db_path, [e.text for e in examples] + pool_texts)
    assert len(ids) == len(examples) + len(pool_texts)
    for item_id, example in zip(ids, examples, strict=False):
        spans = tuple(Span(s, e, "BOOK") for s, e in example.spans)
        store.record_answer(item_id, NewAnswer("ann", "accept", spans=spans, view_id="ner_manual"))
    rng = np.random.default_rng(0)
    pool = ArrayPool(np.array(ids), rng.normal(size=(len(ids), 8)).astype(np.float32))
    suggester = SpanSuggester(fake_token_states, "fake-graph")
    result = run_round(
        Store(db_path),
        pool,
        RoundConfig(label="BOOK", batch_size=10, random_seed=1),
        spans=suggester,
    )
    assert result.batch_id is not None
    assert [m.label for m in store.span_models("fake-graph")] == ["BOOK"]
    shown_with_suggestions = 0
    for entry in result.entries:
        queued = store.queued_item("ann", result.batch_id, entry.item_id)
        assert queued is not None and queued.suggestions is not None
        text = queued.item.text
        for suggestion in queued.suggestions:
            assert 0 <= suggestion.start < suggestion.end <= len(text)
        shown = shown_from_queue(store, queued)
        assert [(c.start, c.end) for c in shown.candidates] == [
            (s.start, s.end) for s in queued.suggestions
        ]
        shown_with_suggestions += bool(queued.suggestions)
    assert shown_with_suggestions > 0
    # Loaded back for this graph only.
    assert suggester.load(store) is not None
    assert SpanSuggester(fake_token_states, "other-graph").load(store) is None


def test_a_batch_without_stored_suggestions_shows_the_rules(db_path: Path) -> None:
    store, ids = store_with_texts(db_path, ['I read "The Hobbit" twice.'])

    batch_id = publish(store, ids)
    queued = store.queued_item("ann", batch_id, ids[0])
    assert queued is not None and queued.suggestions is None
    shown = shown_from_queue(store, queued)
    assert shown.candidates == tuple(suggest_candidates(queued.item.text))


def test_the_stored_model_serves_until_enough_new_spans_are_marked(db_path: Path) -> None:
    examples = [SpanExample(f"{e.text} ({n})", e.spans) for n, e in enumerate(title_texts(60, 3))]
    store, ids = store_with_texts(db_path, [e.text for e in examples] + ["Try Ubik, it is short."])
    batch_id = publish(store, ids[-1:])

    def mark(first: int, last: int) -> None:
        for item_id, example in zip(ids[first:last], examples[first:last], strict=True):
            spans = tuple(Span(s, e, "BOOK") for s, e in example.spans)
            store.record_answer(
                item_id, NewAnswer("ann", "accept", spans=spans, view_id="ner_manual")
            )

    mark(0, 30)
    suggester = SpanSuggester(fake_token_states, "fake-graph")
    suggester.after_publish(store, batch_id)  # the first marks: trained, suggestions stored
    (first,) = store.span_models("fake-graph")
    queued = store.queued_item("ann", batch_id, ids[-1])
    assert queued is not None and queued.suggestions is not None
    mark(30, 32)  # a few more spans: the stored model still serves
    suggester.after_publish(store, batch_id)
    assert store.span_models("fake-graph")[0].trained_at == first.trained_at
    mark(32, 60)  # many more: trained again, on all of them
    suggester.after_publish(store, batch_id)
    (again,) = store.span_models("fake-graph")
    assert again.trained_at > first.trained_at
    assert again.report["spans"] == store.marked_span_count() > first.report["spans"]


def marked_store(db_path: Path, count: int, seed: int) -> tuple[Store, list[int], list[int]]:
    """A database whose first `count` texts carry marked titles, and as many unanswered ones."""
    examples = [
        SpanExample(f"{e.text} ({n})", e.spans) for n, e in enumerate(title_texts(count, seed))
    ]
    pool_texts = [f"{e.text} [{n}]" for n, e in enumerate(title_texts(count, seed + 1))]
    store, ids = store_with_texts(db_path, [e.text for e in examples] + pool_texts)
    for item_id, example in zip(ids, examples, strict=False):
        spans = tuple(Span(s, e, "BOOK") for s, e in example.spans)
        store.record_answer(item_id, NewAnswer("ann", "accept", spans=spans, view_id="ner_manual"))
    return store, ids[:count], ids[count:]


def unit_pool(store: Store) -> ArrayPool:
    """Unit vectors for every item, as the encoder's are (selection reads cosines off them)."""
    ids = np.array(sorted(store.item_ids()))
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    return ArrayPool(ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def test_a_batch_is_published_with_the_stored_models_suggestions(db_path: Path) -> None:
    store, _, unanswered = marked_store(db_path, 40, seed=4)
    suggester = SpanSuggester(fake_token_states, "fake-graph")
    suggester.train(store)
    expected = suggester.suggestions_for(store, unanswered[:5])
    assert expected is not None and any(expected.values())
    entries = [BatchEntry(item_id, "random", 0.5, n) for n, item_id in enumerate(unanswered[:5])]
    batch_id = store.publish_batch(entries, source="score", span_suggestions=expected)
    # Stored by the publishing transaction itself: there is no moment the batch is out without.
    for item_id in unanswered[:5]:
        queued = store.queued_item("ann", batch_id, item_id)
        assert queued is not None
        assert list(queued.suggestions or ()) == expected[item_id]


def test_a_round_publishes_with_suggestions_and_retrains_only_when_due(db_path: Path) -> None:
    store, _, unanswered = marked_store(db_path, 40, seed=5)
    suggester = SpanSuggester(fake_token_states, "fake-graph")
    suggester.train(store)
    (model_before,) = store.span_models("fake-graph")
    pool = unit_pool(store)
    result = run_round(
        store, pool, RoundConfig(label="BOOK", batch_size=10, random_seed=1), spans=suggester
    )
    assert result.batch_id is not None
    (model_after,) = store.span_models("fake-graph")
    assert model_after.trained_at == model_before.trained_at  # no new mark: no training
    for entry in result.entries:
        queued = store.queued_item("ann", result.batch_id, entry.item_id)
        assert queued is not None and queued.suggestions is not None
    assert len(result.entries) == 10 and set(unanswered) >= {e.item_id for e in result.entries}


def test_a_failing_span_step_still_publishes_the_batch(db_path: Path) -> None:
    store, _, _ = marked_store(db_path, 20, seed=6)
    SpanSuggester(fake_token_states, "fake-graph").train(store)

    def broken(texts: Sequence[str]) -> list[TokenStates]:
        raise RuntimeError("encoder gone")

    pool = unit_pool(store)
    result = run_round(
        store,
        pool,
        RoundConfig(label="BOOK", batch_size=10, random_seed=1),
        spans=SpanSuggester(broken, "fake-graph"),
    )
    assert result.batch_id is not None
    queued = store.queued_item("ann", result.batch_id, result.entries[0].item_id)
    assert queued is not None and queued.suggestions is None  # the TUI shows the rules'


def test_training_again_encodes_only_the_texts_marked_since(db_path: Path) -> None:
    store, marked, unanswered = marked_store(db_path, 30, seed=7)
    encoded: list[str] = []

    def counting(texts: Sequence[str]) -> list[TokenStates]:
        encoded.extend(texts)
        return fake_token_states(texts)

    suggester = SpanSuggester(counting, "fake-graph")
    first = suggester.train(store)
    assert len(encoded) == suggester.last_encoded == 30
    for item_id in unanswered[:3]:
        store.record_answer(
            item_id,
            NewAnswer("ann", "accept", spans=(Span(0, 4, "BOOK"),), view_id="ner_manual"),
        )
    again = suggester.train(store)
    assert suggester.last_encoded == 3 and len(encoded) == 33
    assert again.models["BOOK"].training["texts"] == first.models["BOOK"].training["texts"] + 3
    # The kept features are the ones computed afresh (to float16 precision).
    kept = suggester.features_of(encoded)
    assert suggester.last_encoded == 0
    for text, states in zip(encoded, fake_token_states(encoded), strict=True):
        fresh = text_features(text, states)
        assert kept[text].words == fresh.words and kept[text].candidates == fresh.candidates
        np.testing.assert_allclose(kept[text].features, fresh.features, rtol=1e-3, atol=1e-3)


def test_a_renamed_label_renames_its_span_model_suggestions_and_round_reports(
    db_path: Path,
) -> None:
    from hnbooks.store.reports import RoundReport

    store, _, unanswered = marked_store(db_path, 30, seed=8)
    suggester = SpanSuggester(fake_token_states, "fake-graph")
    suggester.train(store)
    store.record_round(RoundReport(mode="model", label="BOOK"))
    store.rename_label("BOOK", "TITLE")
    assert [m.label for m in store.span_models("fake-graph")] == ["TITLE"]
    assert store.rounds()[-1].report.label == "TITLE"
    suggested = suggester.suggestions_for(store, unanswered[:5])
    assert suggested is not None and any(suggested.values())
    assert {s.label for found in suggested.values() for s in found} == {"TITLE"}
    assert any(s.source == "model" for found in suggested.values() for s in found)
