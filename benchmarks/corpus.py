"""Benchmark input: short English sentences of varied length, the same on every run."""

from __future__ import annotations

import random

SUBJECTS = ["The new bridge", "A small cafe", "Our support team", "The city council", "A delivery drone",
            "The night train", "An old lighthouse", "The football club", "A local bakery", "The weather service"]
VERBS = ["announced", "opened", "delayed", "reported", "photographed", "repaired", "cancelled", "celebrated"]
OBJECTS = ["a new schedule", "the harbour festival", "its winter menu", "a power outage", "the annual report",
           "a record number of visitors", "the storm warning", "an updated privacy policy"]
TAILS = ["", " this morning", " after a long delay", " near the central station", " for the third time this year",
         " despite heavy rain and strong winds along the coast", " according to a statement published online"]


def sentences(count: int, seed: int = 0) -> list[str]:
    """Return ``count`` sentences of 5 to 20 words."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}."
        for _ in range(count)
    ]
