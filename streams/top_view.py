"""The screen of ``embedstream top``: a snapshot as rich tables."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from streams.snapshot import Count, Snapshot

EMPTY = "-"


def format_count(value: float) -> str:
    return f"{value:,.0f}"


def format_rate(value: float | None) -> str:
    if value is None:
        return EMPTY
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def format_seconds(value: float | None) -> str:
    if value is None:
        return EMPTY
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def render_view(snapshot: Snapshot, url: str, interval_s: float, error: str | None) -> RenderableType:
    """Return the whole screen: a status line, then the tables in a two-column grid."""
    taken_at = datetime.datetime.fromtimestamp(snapshot.taken_at).strftime("%H:%M:%S")
    span = "rates after the next refresh" if snapshot.window_s is None else f"rates over {snapshot.window_s:.0f} s"
    status = Text(f"embedstream top  {url}  every {interval_s:g} s  {span}  read {taken_at}", style="bold")
    if error is not None:
        status.append(f"\nlast read failed: {error}; showing the previous figures", style="bold red")

    grid = Table.grid(expand=True, padding=(0, 2))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(_throughput(snapshot), _latency(snapshot))
    grid.add_row(_batches(snapshot), _lag(snapshot))
    grid.add_row(
        _counts("Dead letters", "reason", snapshot.deadletters), _counts("Retries", "operation", snapshot.retries)
    )
    grid.add_row(_counts("Input topics", "topic", snapshot.consumed), _index(snapshot))
    return Group(status, grid, _stages(snapshot))


def _table(
    title: str, labels: Sequence[str], figures: Sequence[str], rows: Iterable[Sequence[str]], empty: str
) -> Table:
    """Return a table whose label columns come first and whose figures are right-aligned."""
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, expand=True, pad_edge=False
    )
    for label in labels:
        table.add_column(label)
    for figure in figures:
        table.add_column(figure, justify="right")
    count = 0
    for row in rows:
        table.add_row(*row)
        count += 1
    if count == 0:
        table.add_row(Text(empty, style="dim italic"), *[""] * (len(labels) + len(figures) - 1))
    return table


def _throughput(snapshot: Snapshot) -> Table:
    rows = (
        (row.modality, row.space, format_rate(row.embedded_per_s), format_rate(row.matches_per_s),
         format_count(row.embedded_total), format_count(row.matches_total))
        for row in snapshot.throughput
    )
    return _table(
        "Throughput per modality",
        ("modality", "space"), ("embedded/s", "matches/s", "embedded", "matches"),
        rows, "no input embedded yet",
    )


def _latency(snapshot: Snapshot) -> Table:
    rows = (
        (row.modality, row.space, format_seconds(row.p50_s), format_seconds(row.p95_s),
         format_seconds(row.p99_s), format_count(row.observations))
        for row in snapshot.latency
    )
    return _table(
        "End-to-end latency", ("modality", "space"), ("p50", "p95", "p99", "inputs"), rows,
        "no input finished in the window",
    )


def _batches(snapshot: Snapshot) -> Table:
    rows = (
        (row.modality, row.space, format_rate(row.batches_per_s),
         EMPTY if row.mean_size is None else f"{row.mean_size:.1f}",
         format_seconds(row.mean_fill_wait_s), format_seconds(row.p95_fill_wait_s))
        for row in snapshot.batches
    )
    return _table(
        "Batches", ("modality", "space"), ("batches/s", "mean size", "fill wait", "p95 fill wait"), rows,
        "no batch yet",
    )


def _lag(snapshot: Snapshot) -> Table:
    rows = ((row.topic, row.partition, format_count(row.records)) for row in snapshot.lag)
    return _table("Consumer lag", ("topic", "partition"), ("records",), rows, "no partition assigned yet")


def _counts(title: str, label: str, counts: Sequence[Count]) -> Table:
    rows = ((row.label, format_count(row.total), format_rate(row.per_s)) for row in counts)
    return _table(title, (label,), ("total", "per s"), rows, "none")


def _index(snapshot: Snapshot) -> Table:
    rows = [(row.label, format_count(row.value)) for row in snapshot.index_documents]
    rows += [(row.label, f"{row.value / 2**20:.1f} MiB") for row in snapshot.cuda_memory_bytes]
    return _table("Index documents, GPU memory", ("space or device",), ("value",), rows, "not read yet")


def _stages(snapshot: Snapshot) -> Table:
    rows = (
        (row.modality, row.space, row.stage, format_seconds(row.mean_s), format_seconds(row.p95_s))
        for row in snapshot.stages
    )
    return _table("Stage times per batch", ("modality", "space", "stage"), ("mean", "p95"), rows, "no batch yet")
