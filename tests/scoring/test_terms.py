"""The word counts beside the vectors: scikit-learn's TF-IDF exactly, counted once per text, whole
after kill -9 at any moment, and read a chunk at a time as the head scores the pool."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfTransformer

from hnbooks.scoring.embed import text_fingerprints
from hnbooks.scoring.job import RoundConfig, run_round
from hnbooks.scoring.pool import WORD_WEIGHT, ArrayPool, PoolVectors, WordPool
from hnbooks.scoring.select import Mix, QueryMatches
from hnbooks.scoring.terms import (
    HASHED_COLUMNS,
    TermCache,
    count_missing_terms,
    hashed_counts,
    inverse_document_frequency,
    tfidf_matrix,
)
from hnbooks.store.records import NewAnswer
from tests.helpers import kill_writer, store_with_texts

TEXTS = [
    "I loved reading Dune by Frank Herbert",
    "the weather is bad today, today and today",
    "",
    "Gödel, Escher, Bach is a book about loops",
    "the rust borrow checker rejects this loop",
    "Dune again: Herbert wrote five sequels",
]


def test_the_pools_words_are_scikit_learns_tfidf_and_chunks_score_as_rows(tmp_path: Path) -> None:
    ids = np.array([3, 1, 7, 2, 10, 4])
    terms = TermCache.open(tmp_path / "x.db", "db")
    terms.write_counts(ids, hashed_counts(TEXTS), np.arange(1, 7))
    terms = TermCache.open(tmp_path / "x.db", "db")
    assert terms.documents == 6

    order = np.argsort(ids)
    expected = TfidfTransformer(sublinear_tf=True).fit_transform(hashed_counts(TEXTS))[order]
    embeddings = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    pool = WordPool(ArrayPool(ids, embeddings), terms)
    rows = pool.rows(ids[order])
    assert rows.shape == (6, HASHED_COLUMNS + 4)
    np.testing.assert_allclose(
        rows[:, :HASHED_COLUMNS].toarray(), WORD_WEIGHT * expected.toarray(), atol=1e-6
    )
    np.testing.assert_allclose(rows[:, HASHED_COLUMNS:].toarray(), embeddings[order])

    coef = np.random.default_rng(1).normal(size=rows.shape[1])
    chunked = np.concatenate([chunk @ coef for _, chunk in pool.chunks(rows=2)])
    np.testing.assert_allclose(chunked, rows @ coef, rtol=1e-5, atol=1e-5)
    words_only = np.concatenate(
        [chunk.word_product(coef[:HASHED_COLUMNS]) for _, chunk in pool.chunks(rows=2)]
    )
    np.testing.assert_allclose(
        words_only, rows[:, :HASHED_COLUMNS] @ coef[:HASHED_COLUMNS], rtol=1e-5, atol=1e-5
    )


def test_a_keyword_search_over_the_pools_chunks_matches_one_over_its_rows(tmp_path: Path) -> None:
    ids = np.array([3, 1, 7, 2, 10, 4])
    terms = TermCache.open(tmp_path / "x.db", "db")
    terms.write_counts(ids, hashed_counts(TEXTS), np.arange(1, 7))
    embeddings = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    pool = WordPool(ArrayPool(ids, embeddings), terms)
    # The query's words and an embedding: a keyword search reads only the words.
    query = sparse.hstack(
        [hashed_counts(["dune herbert loops"]), sparse.csr_matrix(np.ones((1, 4)))]
    ).tocsr()
    eligible = np.ones(11, dtype=bool)
    over_chunks = QueryMatches(query, eligible, 6, word_columns=HASHED_COLUMNS)
    for chunk_ids, chunk in pool.chunks(rows=2):
        over_chunks.add(chunk_ids, chunk)
    over_rows = QueryMatches(query, eligible, 6, word_columns=HASHED_COLUMNS)
    over_rows.add(np.sort(ids), pool.rows(np.sort(ids)))
    # Texts 0, 3 and 5 hold "dune", "herbert" or "loops"; the others none of them.
    assert over_chunks.best().tolist() == over_rows.best().tolist()
    assert sorted(over_chunks.best().tolist()) == sorted(ids[[0, 3, 5]].tolist())


def test_a_text_counted_again_leaves_its_old_words_out(tmp_path: Path) -> None:
    terms = TermCache.open(tmp_path / "x.db", "db")
    terms.write_counts(np.array([1, 2]), hashed_counts(TEXTS[:2]), np.array([11, 12]))
    terms.write_counts(np.array([2]), hashed_counts(["fresh words only"]), np.array([13]))
    reopened = TermCache.open(tmp_path / "x.db", "db")
    expected = np.asarray((hashed_counts([TEXTS[0], "fresh words only"]) > 0).sum(axis=0)).ravel()
    np.testing.assert_array_equal(reopened.document_counts, expected)
    assert reopened.documents == 2
    np.testing.assert_array_equal(reopened.stored_keys(np.array([1, 2, 3])), [11, 13, 0])


def test_counts_of_another_database_are_emptied(tmp_path: Path) -> None:
    TermCache.open(tmp_path / "x.db", "one").write_counts(
        np.array([1]), hashed_counts(TEXTS[:1]), np.array([5])
    )
    other = TermCache.open(tmp_path / "x.db", "two")
    assert other.reset_reason and "another database" in other.reset_reason
    assert other.documents == 0
    assert other.stored_keys(np.array([1]))[0] == 0


def test_store_texts_are_counted_once_and_changed_ones_again(tmp_path: Path) -> None:
    texts = [f"comment {n} about the book {n % 5} and its author" for n in range(120)]
    store, item_ids = store_with_texts(tmp_path / "x.db", texts)
    terms = TermCache.open(store.path, store.database_id())
    progress: list[tuple[int, int]] = []
    report = count_missing_terms(store, terms, chunk=50, progress=lambda *p: progress.append(p))
    assert (report.counted, report.already_counted) == (120, 0)
    assert progress[-1] == (120, 120) and len(progress) == 4
    assert terms.documents == 120
    again = count_missing_terms(store, TermCache.open(store.path, store.database_id()))
    assert (again.counted, again.already_counted) == (0, 120)

    stored = TermCache.open(store.path, store.database_id()).rows(np.array(item_ids))
    expected = hashed_counts(texts)
    np.testing.assert_array_equal(stored.row_lengths, np.diff(expected.indptr))
    np.testing.assert_array_equal(stored.columns, expected.indices)
    np.testing.assert_array_equal(stored.counts, expected.data)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from hnbooks.scoring.terms import TermCache, hashed_counts

    terms = TermCache.open(sys.argv[1], "db")
    if sys.argv[2] == "before-commit":
        # Die with a write's entries and index rows on disk, before its commit.
        import os, signal
        def die(self):
            os.kill(os.getpid(), signal.SIGKILL)
        TermCache._commit = die
    chunk = 0
    while True:
        ids = np.arange(1 + 500 * chunk, 1 + 500 * (chunk + 1))
        texts = [f"text {i} words {i % 13} and {i % 7}" for i in ids]
        terms.write_counts(ids, hashed_counts(texts), ids + 1000)
        print(chunk, flush=True)
        chunk += 1
    """
)


@pytest.mark.parametrize(
    ("mode", "chunks_before_kill"), [("loop", 1), ("loop", 4), ("before-commit", 0)]
)
def test_sigkill_mid_write_leaves_whole_counts(
    tmp_path: Path, mode: str, chunks_before_kill: int
) -> None:
    db = tmp_path / "x.db"
    if mode == "before-commit":
        TermCache.open(db, "db").write_counts(
            np.array([900]), hashed_counts(["text 900 words 3 and 4"]), np.array([1900])
        )
    reported = kill_writer(WRITER, [str(db), mode], chunks_before_kill)
    if mode == "before-commit":
        assert TermCache(db).writing_path.exists()

    terms = TermCache.open(db, "db")
    assert not terms.writing_path.exists()
    ids = np.arange(1, 500 * (reported + 3))
    if mode == "before-commit":
        assert terms.stored_keys(np.arange(1, 501)).max() == 0
        assert terms.stored_keys(np.array([900]))[0] == 1900
    keys = terms.stored_keys(ids)
    counted = ids[keys != 0]
    np.testing.assert_array_equal(keys[keys != 0], counted + 1000)
    assert counted.size >= 500 * reported and terms.documents == counted.size

    # What the kill interrupted is counted again, and the counts then agree with the texts.
    missing = ids[keys == 0]
    texts = {i: f"text {i} words {i % 13} and {i % 7}" for i in ids.tolist()}
    terms.write_counts(missing, hashed_counts([texts[i] for i in missing]), missing + 1000)
    expected = hashed_counts([texts[i] for i in ids])
    stored = TermCache.open(db, "db").rows(ids)
    np.testing.assert_array_equal(stored.columns, expected.indices)
    np.testing.assert_array_equal(
        terms.document_counts, np.bincount(expected.indices, minlength=HASHED_COLUMNS)
    )
    assert terms.documents == ids.size


def test_fingerprints_match_what_planning_compares(tmp_path: Path) -> None:
    """The keys stored are the store's text fingerprints, so a text edited later is recounted."""
    store, item_ids = store_with_texts(tmp_path / "x.db", TEXTS)
    terms = TermCache.open(store.path, store.database_id())
    count_missing_terms(store, terms)
    keys = [key for _, chunk_keys in store.iter_item_text_keys() for key in chunk_keys]
    np.testing.assert_array_equal(terms.stored_keys(np.array(item_ids)), text_fingerprints(keys))


def test_tfidf_matrix_matches_scikit_learn_on_real_comments(bookfinder_files: list[Path]) -> None:
    texts = [
        json.loads(line)["text"]
        for path in bookfinder_files
        for line in path.open(encoding="utf-8")
    ]
    counts = hashed_counts(texts)
    document_counts = np.asarray((counts > 0).sum(axis=0)).ravel()
    ours = tfidf_matrix(counts, inverse_document_frequency(document_counts, len(texts)))
    expected = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    assert len(texts) > 1000
    assert abs(ours - expected).max() < 1e-5


def test_a_round_finds_by_words_what_the_embeddings_do_not_show(tmp_path: Path) -> None:
    """Embeddings that carry no signal: only the words tell the positives apart, and a round over
    the `WordPool` ranks the unanswered ones first, where embeddings alone cannot."""
    rng = np.random.default_rng(3)
    filler = "market server cloud compiler kernel browser startup python postgres linux".split()
    texts = [
        " ".join(rng.choice(filler, 8))
        + (" then I read Neuromancer by William Gibson" if n % 10 == 0 else "")
        for n in range(400)
    ]
    vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = RoundConfig(label="BOOK", batch_size=20, mix=Mix.only("top"), random_seed=1)

    def positives_picked(folder: Path, words: bool) -> int:
        folder.mkdir()
        store, item_ids = store_with_texts(folder / "x.db", texts)
        positives = {i for n, i in enumerate(item_ids) if n % 10 == 0}
        for item_id in sorted(positives)[:6]:
            store.record_answer(item_id, NewAnswer("ann", "accept"))
        for item_id in [i for i in item_ids if i not in positives][:40]:
            store.record_answer(item_id, NewAnswer("ann", "reject"))
        pool: PoolVectors = ArrayPool(np.array(item_ids), vectors)
        if words:
            terms = TermCache.open(store.path, store.database_id())
            count_missing_terms(store, terms)
            pool = WordPool(pool, terms)
        result = run_round(store, pool, config)
        stored = store.rounds()[-1].report
        assert stored.features == ("words + embeddings" if words else "embeddings")
        return len({entry.item_id for entry in result.entries} & positives)

    with_words = positives_picked(tmp_path / "words", words=True)
    alone = positives_picked(tmp_path / "alone", words=False)
    assert with_words >= 18
    assert alone <= 8


def test_a_round_trained_on_the_seed_query_finds_what_its_one_answer_does_not_show(
    tmp_path: Path,
) -> None:
    """One accepted text names Gibson; the other positives only say "great novel", as the seed
    query does. Trained on the query as a positive the head ranks those among its top picks, and
    the round report says what it read; without the query it finds none of them."""
    rng = np.random.default_rng(5)
    filler = "market server cloud compiler kernel browser startup python postgres linux".split()
    kinds = {0: " then I read Neuromancer by William Gibson", 10: " what a great novel, truly"}
    texts = [" ".join(rng.choice(filler, 8)) + kinds.get(n % 20, "") for n in range(400)]
    vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = "a great novel"
    query_vector = rng.normal(size=8).astype(np.float32)
    query_vector /= np.linalg.norm(query_vector)

    def novels_picked(folder: Path, query_as_positive: bool, mix: Mix | None = None) -> int:
        folder.mkdir()
        store, item_ids = store_with_texts(folder / "x.db", texts)
        novels = {i for n, i in enumerate(item_ids) if n % 20 == 10}
        store.record_answer(item_ids[0], NewAnswer("ann", "accept"))
        for item_id in [i for n, i in enumerate(item_ids) if n % 10][:40]:
            store.record_answer(item_id, NewAnswer("ann", "reject"))
        terms = TermCache.open(store.path, store.database_id())
        count_missing_terms(store, terms)
        pool = WordPool(ArrayPool(np.array(item_ids), vectors), terms)
        config = RoundConfig(
            label="BOOK",
            batch_size=20,
            mix=mix or Mix.only("top"),
            seed_query=query,
            random_seed=1,
            query_as_positive=query_as_positive,
        )
        result = run_round(store, pool, config, encode_query=lambda text: query_vector)
        assert result.head is not None
        assert result.head.training["query_rows"] == int(query_as_positive)
        assert store.rounds()[-1].report.seed_query == (query if query_as_positive else None)
        picked = {entry.item_id for entry in result.entries} & novels
        if mix is not None and mix["query"] > 0:
            by_query = {entry.item_id for entry in result.entries if entry.strategy == "query"}
            assert by_query and by_query <= novels
        return len(picked)

    assert novels_picked(tmp_path / "query", query_as_positive=True) >= 3
    assert novels_picked(tmp_path / "answers", query_as_positive=False) == 0
    # Untrained on, the query still serves its own matches through the query strategy.
    matched = novels_picked(
        tmp_path / "matched", query_as_positive=False, mix=Mix({"top": 0.5, "query": 0.5})
    )
    assert matched >= 5


def test_the_head_fits_hashed_words_over_the_columns_they_use_and_scores_every_column() -> None:
    """A fit over the few thousand used columns of 2^18 gives the same head as a dense fit
    over them, with weight 0 for every other column."""
    from hnbooks.scoring.head import train_head
    from hnbooks.scoring.terms import inverse_document_frequency

    rng = np.random.default_rng(0)
    words = "book novel author read compiler kernel server rust python cloud".split()
    texts = [" ".join(rng.choice(words, 6)) for _ in range(80)]
    counts = hashed_counts(texts)
    idf = inverse_document_frequency(np.bincount(counts.indices, minlength=HASHED_COLUMNS), 80)
    features = tfidf_matrix(counts, idf)
    labels = np.array(["novel" in text for text in texts])
    head = train_head(features, labels)
    used = np.unique(features.indices)
    dense = train_head(features[:, used].toarray(), labels)
    assert head.coef.shape == (HASHED_COLUMNS,)
    np.testing.assert_allclose(head.coef[used], dense.coef, atol=1e-4)
    assert not np.delete(head.coef, used).any()
    np.testing.assert_allclose(
        head.probability(features), dense.probability(features[:, used].toarray()), atol=1e-4
    )
