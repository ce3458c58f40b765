"""`hnbooks-score --watch`: one long-running scorer that keeps the queue a batch ahead of the annotators.

It holds the database's scorer lease (renewed by a heartbeat thread), loads the encoder once, embeds
texts as they are imported, and starts a round when

  - an annotator asked for one (the TUI's "score now"),
  - no batch was ever published,
  - a batch's worth of new answers has arrived since its last round, or
  - an active annotator (answered lately, or holds claims) has fewer than `low_water` items left,

whichever comes first, so the next batch is there before the current one runs out. Between checks it
sleeps on an event (a signal wakes it at once); a round that fails is logged and retried after a
growing pause.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hnbooks.scoring.job import RoundConfig, RoundResult, run_round
from hnbooks.scoring.prepare import (
    LoadedEncoder,
    embed_new_texts,
    embed_new_texts_on_ray,
    prepared,
)
from hnbooks.scoring.spans import SpanSuggester
from hnbooks.store import Store
from hnbooks.store.reports import EmbeddingReport
from hnbooks.store.scorer import LEASE_TTL_S, LeaseHolder, ScorerState

if TYPE_CHECKING:
    from hnbooks.scoring.ray_engine import RayCluster

Log = Callable[[str], None]


class StopRequested(Exception):
    """Raised inside long work (embedding) once a stop was asked for."""


class LeaseLost(Exception):
    """Another scorer holds the database now (ours expired): this one must stop."""


@dataclass(frozen=True)
class WatchConfig:
    round: RoundConfig
    low_water: int
    """Start a round when an active annotator has fewer items than this left."""
    poll_s: float = 1.0
    heartbeat_s: float = 5.0
    lease_ttl_s: float = LEASE_TTL_S
    active_window_s: float = 900.0
    """An annotator who answered within this window counts as active."""
    first_backoff_s: float = 2.0
    max_backoff_s: float = 60.0


@dataclass(frozen=True)
class RoundDue:
    reason: str
    request_ids: tuple[int, ...] = ()


class Watcher:
    """The watching scorer's loop over one database; `run` returns when `stop` is set."""

    def __init__(
        self,
        store: Store,
        loaded: LoadedEncoder,
        config: WatchConfig,
        holder: LeaseHolder,
        stop: threading.Event,
        log: Log,
        cluster: RayCluster | None = None,
    ) -> None:
        self.store = store
        self.loaded = loaded
        self.cluster = cluster
        """Where new texts are embedded (`--engine ray`); None: in this process."""
        self.spans = SpanSuggester.of_encoder(loaded.encoder)
        """One for the watcher's life: it keeps the marked texts' features between trainings."""
        self.config = config
        self.holder = holder
        self.stop = stop
        self.log = log
        self.rounds_run = 0
        self.last_round_answer_id: int | None = None
        """The newest answer row when the last round started (None: no round yet in this process)."""
        self.last_round_largest_item_id: int | None = None
        self.embedded_up_to_item_id = -1
        self.lease_lost = threading.Event()
        self.seen_data_version: int | None = None
        """The database's data_version at the last check that found nothing to do."""

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        heartbeat = threading.Thread(target=self.beat, name="hnbooks-scorer-heartbeat", daemon=True)
        heartbeat.start()
        backoff = self.config.first_backoff_s
        try:
            while not self.stop.is_set():
                try:
                    self.step()
                    backoff = self.config.first_backoff_s
                except StopRequested:
                    break
                except LeaseLost:
                    self.log("the scorer lease was taken over by another scorer; stopping")
                    return
                except Exception as error:  # noqa: BLE001 - a failed round must not end the watch
                    self.log(
                        f"round failed: {type(error).__name__}: {error}; retrying in {backoff:.0f} s"
                    )
                    self.log(traceback.format_exc().rstrip())
                    self.say("backing-off", detail=f"{type(error).__name__}: {error}"[:200])
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, self.config.max_backoff_s)
        finally:
            self.stop.set()
            heartbeat.join(timeout=self.config.heartbeat_s + 1)
            self.say("stopping")

    def step(self) -> None:
        """One check: embed what is new, run a round if one is due, else sleep until the next check."""
        self.check_lease()
        data_version = self.store.data_version()
        if data_version == self.seen_data_version:
            # No other connection committed anything: nothing can have become due.
            self.stop.wait(self.config.poll_s)
            return
        # Items are never deleted, so the largest id grows exactly when texts are imported; it is
        # read from the primary key's end, at no cost whatever the pool's size.
        largest_item_id = self.store.max_item_id()
        if largest_item_id != self.embedded_up_to_item_id:
            self.embed()
            self.embedded_up_to_item_id = largest_item_id
        due = self.round_due(largest_item_id)
        if due is None:
            self.say("idle", answers_before_next_round=self.answers_before_next_round())
            # The version read before the checks: a commit landing during them is seen next time.
            self.seen_data_version = data_version
            self.stop.wait(self.config.poll_s)
            return
        self.seen_data_version = None
        self.log(f"round: {due.reason}")
        self.run_one_round(largest_item_id)
        self.store.mark_round_requests_handled(list(due.request_ids))

    def round_due(self, largest_item_id: int) -> RoundDue | None:
        requests = self.store.pending_round_requests()
        if requests:
            return RoundDue("asked for from the TUI", tuple(requests))
        if largest_item_id == 0:
            return None
        new_answers = (
            None
            if self.last_round_answer_id is None
            else self.store.answers_since(self.last_round_answer_id)
        )
        changed = new_answers != 0 or largest_item_id != self.last_round_largest_item_id
        if not changed:
            # Nothing new since the last round: it would choose from what the last one left.
            return None
        if self.store.latest_batch_id() == 0:
            return RoundDue("no batch published yet")
        if new_answers is not None and new_answers >= self.config.round.batch_size:
            return RoundDue(f"{new_answers} new answers since the last round")
        since = time.time() - self.config.active_window_s
        for annotator in self.store.active_annotators(since):
            left = self.store.remaining_for(annotator)
            if left < self.config.low_water:
                return RoundDue(f"{left} item(s) left for {annotator}")
        return None

    def answers_before_next_round(self) -> int | None:
        if self.last_round_answer_id is None:
            return None
        return max(
            0, self.config.round.batch_size - self.store.answers_since(self.last_round_answer_id)
        )

    def run_one_round(self, largest_item_id: int) -> RoundResult:
        started_at = time.time()
        answer_id_at_start = self.store.latest_answer_id()
        embedding = self.embed()
        self.say("training", detail="training the head and scoring the pool")
        seed = self.config.round.random_seed
        # Each round its own draw, still reproducible from the seed given.
        config = replace(
            self.config.round, random_seed=None if seed is None else seed + self.rounds_run
        )
        pool = prepared(self.store, self.loaded, embedding, bar=False)
        result = run_round(
            self.store,
            pool.pool,
            config,
            encode_query=pool.encode_query,
            embedding=embedding,
            started_at=started_at,
            spans=self.spans,
        )
        self.rounds_run += 1
        # Only a round that ran counts: after a failure the same answers still call for one.
        self.last_round_answer_id = answer_id_at_start
        self.last_round_largest_item_id = largest_item_id
        report = result.report
        published = (
            f"published batch {report.batch_id} ({len(result.entries)} items)"
            if report.batch_id
            else f"no batch: {report.note}"
        )
        self.log(
            f"round {self.rounds_run} ({report.mode}): {published} in {time.time() - started_at:.1f} s"
        )
        self.say(
            "idle", answers_before_next_round=self.answers_before_next_round(), round_finished=True
        )
        return result

    def embed(self) -> EmbeddingReport:
        def on_chunk(done: int, total: int) -> None:
            if self.stop.is_set():
                raise StopRequested
            if total:
                self.say("embedding", progress=done / total, detail=f"{done:,} of {total:,} texts")

        if self.cluster is not None:

            def on_shard(name: str) -> None:
                if self.stop.is_set():
                    raise StopRequested

            self.say("embedding", detail=f"on Ray: {self.cluster.workers.describe()}")
            return embed_new_texts_on_ray(
                self.store, self.loaded, self.cluster, on_shard=on_shard, bar=False
            )
        return embed_new_texts(self.store, self.loaded, on_chunk=on_chunk, bar=False)

    # -- the lease --------------------------------------------------------------------------------

    def beat(self) -> None:
        """The heartbeat thread: renew the lease until stopped, so a long round never lets it lapse."""
        while not self.stop.wait(self.config.heartbeat_s):
            try:
                if not self.store.renew_scorer_lease(self.holder, self.config.lease_ttl_s):
                    self.lease_lost.set()
                    self.stop.set()
                    return
            except Exception as error:  # noqa: BLE001 - a busy database: try again next beat
                self.log(f"lease heartbeat failed: {error}")

    def check_lease(self) -> None:
        if self.lease_lost.is_set():
            raise LeaseLost

    def say(
        self,
        state: ScorerState,
        *,
        progress: float | None = None,
        detail: str | None = None,
        answers_before_next_round: int | None = None,
        round_finished: bool = False,
    ) -> None:
        """Record the scorer's state for the TUI; a failure here never stops the scorer."""
        try:
            self.store.set_scorer_state(
                self.holder,
                state,
                progress=progress,
                detail=detail,
                answers_before_next_round=answers_before_next_round,
                round_finished=round_finished,
            )
        except Exception as error:  # noqa: BLE001
            self.log(f"could not record the scorer's state: {error}")
