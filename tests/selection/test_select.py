"""Selection strategies on hand-built vectors, where the right picks are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from hnbooks.scoring.select import (
    Mix,
    QueryMatches,
    SelectionContext,
    parse_mix,
    select_batch,
    stratified_random,
)


def unit(rows: list[list[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def context_for(vectors: np.ndarray, scores: list[float], **kw: object) -> SelectionContext:
    defaults: dict[str, object] = {
        "eligible": np.ones(len(scores), dtype=bool),
        "labelled_rows": np.array([], dtype=np.intp),
        "blocked_rows": np.array([], dtype=np.intp),
    }
    defaults.update(kw)
    return SelectionContext(
        scores=np.asarray(scores, dtype=np.float64),
        vectors=lambda rows: vectors[rows],
        **defaults,  # type: ignore[arg-type]
    )


def orthogonal(n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)


def test_mix_counts_add_up_and_parse() -> None:
    assert Mix().counts(50) == {"top": 30, "uncertain": 5, "novel": 5, "query": 5, "random": 5}
    assert sum(Mix().counts(7).values()) == 7
    assert parse_mix("top=1") == Mix.only("top")
    with pytest.raises(ValueError, match="unknown strategy"):
        parse_mix("best=1")
    with pytest.raises(ValueError, match="needs a number"):
        parse_mix("top=lots")


def test_top_takes_the_highest_scores_in_order() -> None:
    scores = [0.1, 0.9, 0.5, 0.7, 0.3]
    picks = select_batch(
        context_for(orthogonal(5), scores), 3, Mix.only("top"), np.random.default_rng(0)
    )
    assert [(p.row, p.strategy, p.rank) for p in picks] == [
        (1, "top", 0),
        (3, "top", 1),
        (2, "top", 2),
    ]


def test_top_skips_near_duplicates_of_picks_and_of_blocked_rows() -> None:
    vectors = unit([[1, 0, 0, 0], [1, 0.01, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0.01, 0, 1]])
    # Row 1 nearly duplicates row 0; row 4 nearly duplicates nothing; row 2 is blocked (answered).
    context = context_for(
        vectors,
        [0.9, 0.8, 0.1, 0.5, 0.4],
        eligible=np.array([True, True, False, True, True]),
        blocked_rows=np.array([2]),
    )
    picks = select_batch(context, 3, Mix.only("top"), np.random.default_rng(0))
    assert [p.row for p in picks] == [0, 3, 4]
    blocked_twin = unit([[0, 1, 0], [0, 1, 0.01], [1, 0, 0]])
    context = context_for(
        blocked_twin,
        [0.0, 0.9, 0.5],
        eligible=np.array([False, True, True]),
        blocked_rows=np.array([0]),
    )
    assert [p.row for p in select_batch(context, 2, Mix.only("top"), np.random.default_rng(0))] == [
        2
    ]


def test_cluster_cap_stops_one_thread_filling_the_batch() -> None:
    # Rows 0-3 are one tight cluster (cosine ~0.9 to each other, not duplicates); 4-5 elsewhere.
    base = np.array([1, 0, 0, 0, 0, 0], dtype=np.float32)
    rows = [base + 0.45 * np.eye(6, dtype=np.float32)[k] for k in (1, 2, 3, 4)]
    rows += [
        np.eye(6, dtype=np.float32)[5],
        np.eye(6, dtype=np.float32)[1] - np.eye(6, dtype=np.float32)[0],
    ]
    vectors = unit([list(r) for r in rows])
    context = context_for(vectors, [0.99, 0.98, 0.97, 0.96, 0.5, 0.4], cluster_cap=2)
    picks = select_batch(context, 4, Mix.only("top"), np.random.default_rng(0))
    assert [p.row for p in picks] == [0, 1, 4, 5]


def test_uncertain_takes_the_band_around_the_threshold() -> None:
    scores = [0.99, 0.97, 0.9, 0.8, 0.7, 0.56, 0.52, 0.47, 0.42, 0.3, 0.2, 0.1, 0.05, 0.01]
    for seed in range(5):
        picks = select_batch(
            context_for(orthogonal(14), scores),
            3,
            Mix({"top": 1, "uncertain": 2}),
            np.random.default_rng(seed),
        )
        assert [(p.row, p.strategy) for p in picks][:1] == [(0, "top")]
        uncertain = {p.row for p in picks if p.strategy == "uncertain"}
        # The band is the 2 x 2 rows closest to 0.5: 0.52, 0.47, 0.56, 0.42.
        assert len(uncertain) == 2 and uncertain <= {5, 6, 7, 8}


def test_novel_is_farthest_from_everything_labelled() -> None:
    vectors = unit([[1, 0, 0], [0.9, 0.1, 0], [0.7, 0.7, 0], [0, 0, 1], [0.8, 0, 0.2]])
    context = context_for(
        vectors,
        [0.0, 0.2, 0.3, 0.1, 0.25],
        eligible=np.array([False, True, True, True, True]),
        labelled_rows=np.array([0]),
        blocked_rows=np.array([0]),
    )
    picks = select_batch(context, 2, Mix.only("novel"), np.random.default_rng(0))
    novel = [p.row for p in picks if p.strategy == "novel"]
    # Row 3 is orthogonal to the labelled row 0; then row 2 is farthest from both 0 and 3.
    assert novel == [3, 2]


def test_novel_looks_among_the_best_scored_share_not_at_the_outliers() -> None:
    rows = [[1.0, 0.1 * (n % 3), 0.0] for n in range(100)]
    rows[0] = [1.0, 0.0, 0.0]
    rows[5] = [1.0, 1.0, 0.0]  # far from the answer, and ranked fifth of 99
    rows[50] = [0.0, 0.0, 1.0]  # farthest of all, and ranked 50th
    eligible = np.ones(100, dtype=bool)
    eligible[0] = False

    def novel_pick(among_best: float) -> list[int]:
        context = context_for(
            unit(rows),
            [1 - n / 100 for n in range(100)],
            eligible=eligible,
            labelled_rows=np.array([0]),
            blocked_rows=np.array([0]),
            novelty_among_best=among_best,
        )
        picks = select_batch(context, 1, Mix.only("novel"), np.random.default_rng(0))
        return [p.row for p in picks if p.strategy == "novel"]

    assert novel_pick(0.2) == [5]
    assert novel_pick(1.0) == [50]


def test_stratified_random_covers_every_stratum_with_its_probability() -> None:
    ranking = np.arange(100, dtype=np.intp)
    picks = stratified_random(ranking, 4, np.random.default_rng(1))
    assert [p for _, p, _ in picks] == [1 / 25] * 4
    assert [row // 25 for row, _, _ in picks] == [0, 1, 2, 3]
    assert all(ranking[position] == row for row, _, position in picks)


def test_never_picks_ineligible_rows_and_fills_from_top() -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng.normal(size=(40, 16)).tolist())
    eligible = np.ones(40, dtype=bool)
    eligible[::3] = False
    context = context_for(
        vectors,
        rng.random(40).tolist(),
        eligible=eligible,
        labelled_rows=np.flatnonzero(~eligible),
        blocked_rows=np.flatnonzero(~eligible),
    )
    picks = select_batch(context, 20, Mix(), rng)
    rows = [p.row for p in picks]
    assert len(rows) == len(set(rows)) == 20
    assert all(eligible[r] for r in rows)
    assert {p.strategy for p in picks} == {"top", "uncertain", "novel", "random"}
    assert all(p.inclusion_probability for p in picks if p.strategy == "random")


def test_query_takes_the_best_matches_of_the_query_that_top_left() -> None:
    vectors = orthogonal(6)
    scores = [0.9, 0.8, 0.1, 0.2, 0.05, 0.3]
    # Row 0 is the best match but top takes it first; the query strategy goes on down its list.
    context = context_for(vectors, scores, query_rows=np.array([0, 4, 2], dtype=np.intp))
    picks = select_batch(context, 3, Mix({"top": 1, "query": 2}), np.random.default_rng(0))
    assert [(p.row, p.strategy) for p in picks] == [(0, "top"), (4, "query"), (2, "query")]


def test_without_query_matches_top_takes_the_query_share() -> None:
    context = context_for(orthogonal(4), [0.9, 0.8, 0.1, 0.2])
    picks = select_batch(context, 2, Mix({"top": 1, "query": 1}), np.random.default_rng(0))
    assert [(p.row, p.strategy) for p in picks] == [(0, "top"), (1, "top")]


@pytest.mark.parametrize("chunk_rows", [1, 3, 50])
def test_query_matches_are_the_best_eligible_rows_whatever_the_chunks(chunk_rows: int) -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(50, 8))
    query = rng.normal(size=(1, 8))
    eligible = rng.random(50) < 0.7
    matches = QueryMatches(sparse.csr_matrix(query), eligible, count=6)
    for start in range(0, 50, chunk_rows):
        ids = np.arange(start, min(start + chunk_rows, 50))
        matches.add(ids, sparse.csr_matrix(features[ids]))
    likeness = features @ query.ravel()
    expected = [row for row in np.argsort(-likeness) if eligible[row]][:6]
    assert matches.best().tolist() == expected


def test_query_matches_with_words_are_a_keyword_search() -> None:
    # Two word columns, then two embedding dimensions.
    features = np.array(
        [
            [0.0, 0.0, 1.0, 0.0],  # the query's embedding exactly, but none of its words
            [0.2, 0.0, 0.0, 1.0],  # one of its words, a little
            [0.9, 0.0, 0.0, 1.0],  # the same word, more
            [0.0, 0.5, 1.0, 0.0],  # a word the query does not have
        ]
    )
    query = sparse.csr_matrix([[1.0, 0.0, 1.0, 0.0]])
    eligible = np.ones(4, dtype=bool)
    matches = QueryMatches(query, eligible, count=4, word_columns=2)
    matches.add(np.arange(4), sparse.csr_matrix(features))
    assert matches.best().tolist() == [2, 1]
    # No word of the query in the pool's columns: the whole row counts.
    wordless = QueryMatches(sparse.csr_matrix([[0.0, 0.0, 1.0, 0.0]]), eligible, 2, word_columns=2)
    wordless.add(np.arange(4), sparse.csr_matrix(features))
    assert wordless.best().tolist() == [0, 3]
