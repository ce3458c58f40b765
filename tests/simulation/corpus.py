"""Tiny hand-built corpora whose positives are known exactly."""

from __future__ import annotations

import numpy as np

from hnbooks.lab.datasets import Dataset, in_memory_dataset

TOPICS = {
    "zoo": "zebra giraffe savanna lion herd safari antelope watering hole",
    "cars": "engine wheel brake gearbox clutch piston fuel tyre",
    "space": "orbit rocket launch satellite moon shuttle booster payload",
    "food": "recipe oven flour butter sugar bake dough pastry",
    "music": "guitar chord melody drum rhythm tempo bass album",
}
FILLER = "the a of and to in it is was for on with as this that we they".split()


def topic_corpus(per_topic: int = 60, seed: int = 0) -> Dataset:
    """`per_topic` texts per topic, each eight topic words among filler words."""
    rng = np.random.default_rng(seed)
    texts, classes = [], []
    for topic, words in TOPICS.items():
        vocabulary = words.split()
        for n in range(per_topic):
            chosen = list(rng.choice(vocabulary, 8)) + list(rng.choice(FILLER, 6))
            rng.shuffle(chosen)
            texts.append(" ".join(chosen) + f" item{n}")
            classes.append(topic)
    return in_memory_dataset(texts, classes, name="topics")
