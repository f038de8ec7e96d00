"""The figures of ``make bench``, one module each.

Every module exposes ``measure(bench) -> list[Section]``: it measures its figure
and its baseline side by side, and returns the rows for the table (each with its
target and verdict) and the notes that say how it was taken. ``bench/bench.py``
runs them in order.
"""
