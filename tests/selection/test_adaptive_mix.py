"""The adaptive mix: Thompson sampling moves the shares toward the channel finding positives, the
random and query shares never move, novel keeps its floor."""

from __future__ import annotations

import numpy as np

from hnbooks.scoring.select import ChannelYield, Mix, adaptive_mix


def test_the_channel_finding_positives_gets_most_of_the_batch() -> None:
    yields = {
        "top": ChannelYield(answered=140, positives=30),
        "uncertain": ChannelYield(answered=20, positives=1),
        "novel": ChannelYield(answered=20, positives=0),
    }
    adapted = adaptive_mix(Mix(), yields, np.random.default_rng(0))
    assert adapted.mix["random"] == Mix()["random"]
    assert adapted.mix["query"] == Mix()["query"]
    # All but random's and query's tenths and novel's floor: 1 - 0.1 - 0.1 - 0.05.
    assert adapted.mix["top"] > 0.7
    assert abs(adapted.mix["novel"] - 0.05) < 1e-9  # the floor
    assert abs(sum(adapted.mix.values()) - 1.0) < 1e-9
    assert "top 30/140" in adapted.why and "novel 0/20" in adapted.why


def test_a_channel_that_finds_more_takes_over() -> None:
    yields = {
        "top": ChannelYield(answered=100, positives=2),
        "uncertain": ChannelYield(answered=30, positives=9),
        "novel": ChannelYield(answered=30, positives=0),
    }
    adapted = adaptive_mix(Mix(), yields, np.random.default_rng(0))
    assert adapted.mix["uncertain"] > adapted.mix["top"]
    assert adapted.mix.counts(20)["random"] == Mix().counts(20)["random"]


def test_with_nothing_answered_the_channels_share_alike() -> None:
    adapted = adaptive_mix(Mix(), {}, np.random.default_rng(0))
    for name in ("top", "uncertain", "novel"):
        assert abs(adapted.mix[name] - 0.8 / 3) < 0.03


def test_one_channel_alone_is_left_as_it_is() -> None:
    assert adaptive_mix(Mix.only("top"), {}, np.random.default_rng(0)).mix == Mix.only("top")


def test_a_query_share_stays_as_given() -> None:
    base = Mix({"top": 0.6, "uncertain": 0.1, "novel": 0.1, "query": 0.1, "random": 0.1})
    yields = {"top": ChannelYield(answered=100, positives=20), "query": ChannelYield(20, 0)}
    adapted = adaptive_mix(base, yields, np.random.default_rng(0))
    assert adapted.mix["query"] == base["query"] and adapted.mix["random"] == base["random"]
    assert abs(sum(adapted.mix.values()) - 1.0) < 1e-9
