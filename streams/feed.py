"""The latest match events of a worker, kept in memory for its dashboard."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

# Match events kept for the dashboard's feed; older ones drop off.
FEED_LENGTH = 50


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One stored item in the feed: id, modality and preview (snippet or thumbnail URL)."""

    id: str
    modality: str
    preview: str
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A match event as the dashboard shows it."""

    sequence: int
    emitted_at: float
    space: str
    source: FeedItem
    matches: tuple[FeedItem, ...]


class MatchFeed:
    """A bounded list of the latest match events, numbered so readers can ask for newer ones."""

    def __init__(self, length: int = FEED_LENGTH) -> None:
        self._entries: deque[FeedEntry] = deque(maxlen=length)
        self._sequence = 0

    def add(self, space: str, source: FeedItem, matches: tuple[FeedItem, ...]) -> None:
        self._sequence += 1
        self._entries.append(FeedEntry(self._sequence, time.time(), space, source, matches))

    @property
    def last_sequence(self) -> int:
        return self._sequence

    def since(self, sequence: int) -> list[FeedEntry]:
        """Return the kept entries numbered above ``sequence``, oldest first."""
        return [entry for entry in self._entries if entry.sequence > sequence]
