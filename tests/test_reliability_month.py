"""A month in an hour, the fast suite's share of :mod:`tests.support.scenarios.month`.

``make soak-month`` runs 200 shops to a million deliveries and judges RSS; here 20 shops
run about half a minute through every phase of the receiver (200, 503, 200, refused),
which checks the scenario's plumbing (the counts from the log, the state files and the
receiver agree, the files are written, nothing leaks) and that descriptors and threads
stay flat. RSS is not judged at this size: a few hundred deliveries after a warm-up
move it by less than the allocator's own steps, so any limit would be noise.
"""

from __future__ import annotations

import pytest

from tests.support.lab import Lab
from tests.support.scenarios.month import (
    MonthFigures,
    Phase,
    Sample,
    fit,
    lasting,
    month,
    problems,
)


def test_a_month_in_miniature_keeps_descriptors_and_threads_flat(lab: Lab) -> None:
    figures = month(lab, shops=20, beats=600, ok_seconds=6, failing_seconds=3, sample_every=1)
    assert figures.problems == []
    assert figures.beats >= 600
    kinds = {p.kind for p in figures.phases}
    assert kinds == {"ok", "503", "refused"}
    # Each failing kind failed deliveries; the receiver answered 503 to their attempts.
    for kind in ("503", "refused"):
        assert sum(p.failed for p in figures.phases if p.kind == kind) > 0
    assert figures.tally.planned > 0
    assert figures.tally.accepted >= figures.sent > 0
    assert figures.state_files == 20
    assert figures.per_shop[0] > 0
    assert all(figures.compared(what)[1] > 0 for what in ("fds", "threads"))  # looked at
    assert figures.rate > 0 and 0 < figures.failing_share[0] < 1
    assert 0 <= figures.status_ages[0] <= figures.status_ages[1]


def test_the_fitted_line_is_the_least_squares_one() -> None:
    assert fit([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx((2.0, 1.0))
    assert fit([0, 10, 20], [5, 6, 4]) == pytest.approx((-0.05, 5.5))
    with pytest.raises(ValueError, match="two points"):
        fit([1], [1])
    with pytest.raises(ValueError, match="every x is the same"):
        fit([2, 2], [1, 3])


def sample(beats: int, rss: int = 1000, fds: tuple[str, ...] = (), threads: int = 1) -> Sample:
    return Sample(float(beats), beats, rss, 0.0, fds, threads)


def test_a_descriptor_counts_only_when_it_is_there_at_every_look() -> None:
    looks = [
        sample(0, fds=("pipe:[1]", "socket:[7]", "anon_inode:[eventfd]")),
        sample(1, fds=("pipe:[1]", "socket:[8]", "anon_inode:[eventfd]")),
        sample(2, fds=("pipe:[1]", "anon_inode:[eventfd]") * 2),
    ]
    assert lasting(looks) == 2  # the sockets were in flight
    twice = [sample(0, fds=("pipe:[1]",) * 2), sample(1, fds=("pipe:[1]",) * 3)]
    assert lasting(twice) == 2  # a descriptor each, even to the same pipe


def figures_of(samples: list[Sample], warm_beats: int = 0, stop: float = 1.0) -> MonthFigures:
    figures = MonthFigures(shops=1, interval=1.0, target=samples[-1].beats, samples=samples)
    figures.warm_beats, figures.stop_seconds = warm_beats, stop
    figures.phases = [Phase("ok", 1.0, 1)]
    return figures


def test_what_did_not_hold_is_named() -> None:
    flat = [sample(i * 1000, rss=50_000, fds=("pipe:[1]",)) for i in range(10)]
    assert problems(figures_of(flat), rss_limit_kib=1024) == []

    leaking = [
        sample(i * 1000, rss=50_000 + 300 * i, fds=("pipe:[1]",) + ("socket:[9]",) * (i // 5))
        for i in range(10)
    ]
    found = problems(figures_of(leaking, stop=3.5), rss_limit_kib=1024)
    assert found == [
        "SIGTERM took 3.5 s to end the daemon",
        "fds grew: 1 open throughout the first 5 looks after the warm-up, 2 throughout the last 5",
        "RSS grew 2700 KiB after the warm-up (fitted: 3000.0 KiB per 10k heartbeats)",
        "RSS grew 2700 KiB from the first sample after the warm-up to the last",
    ]
    # A step at the very end the fitted line barely sees: the samples still tell.
    step = [sample(i * 1000, rss=50_000 + (1100 if i == 9 else 0)) for i in range(10)]
    assert problems(figures_of(step), rss_limit_kib=1024) == [
        "RSS grew 1100 KiB from the first sample after the warm-up to the last"
    ]
    # Growth all along that a last sample low by chance hides: the fitted line tells.
    hidden = [sample(i * 1000, rss=50_000 + 200 * i) for i in range(9)] + [sample(9000, rss=51_000)]
    assert problems(figures_of(hidden), rss_limit_kib=1024) == [
        "RSS grew 1407 KiB after the warm-up (fitted: 1563.6 KiB per 10k heartbeats)"
    ]
    # Without a limit RSS is reported, not judged.
    assert problems(figures_of(leaking), rss_limit_kib=None) == found[1:2]


def test_threads_are_held_against_the_most_seen_by_the_first_looks_after_warm_up() -> None:
    # A pool that grew to 4 in the warm-up and shrank after: flat.
    pool = [sample(0, threads=2), sample(1, threads=4)] + [
        sample(2 + i, threads=3) for i in range(10)
    ]
    assert problems(figures_of(pool, warm_beats=2), rss_limit_kib=None) == []
    # One more thread at every one of the last looks than ever before: grew.
    grew = pool[:-5] + [sample(20 + i, threads=5 if i % 2 else 6) for i in range(5)]
    assert problems(figures_of(grew, warm_beats=2), rss_limit_kib=None) == [
        "threads grew: at most 4 by the first 5 looks after the warm-up, at least 5 at each "
        "of the last 5"
    ]
    assert figures_of(grew, warm_beats=2).ends("threads") == (3, 6)
    assert figures_of(grew, warm_beats=2).spread("threads") == (3, 6)
