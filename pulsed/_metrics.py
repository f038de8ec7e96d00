"""The Prometheus textfile: the status document's figures for node_exporter.

The file is the Prometheus text exposition format 0.0.4, one family per figure,
each with ``# HELP`` and ``# TYPE``, every sample labelled ``shop``. It is made in
two steps, so a daemon of thousands of shops renders one shop per change, not every
shop per write: :func:`samples` renders one shop's lines (one text per family), and
:func:`text` joins the kept texts of every shop under the families' heads.
:func:`render` does both for a whole status document (:func:`pulsed._status.document`).
All are pure and written by hand rather than through ``prometheus_client``: the format
is a few lines of text, and the library would stay imported in the daemon for the
whole of its life (docs/status.md has the measured cost). A figure that is not known
(no success yet) has no sample rather than a made-up value, so ``absent()`` and
``time() - …`` alerts behave.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Literal

from pulsed import _timefmt

Kind = Literal["gauge", "counter"]
Value = Callable[[Mapping[str, Any]], float | None]


def _time_field(shop: Mapping[str, Any], key: str) -> float | None:
    """The document's time ``key`` (RFC 3339 text) as seconds since the epoch."""
    text = shop[key]
    return None if text is None else _timefmt.parse(text)


def _field(shop: Mapping[str, Any], key: str, scale: float = 1.0) -> float | None:
    """The document's figure ``key``, times ``scale``."""
    raw = shop[key]
    return None if raw is None else raw * scale


# name, type, help, value. Counter names carry their ``_total`` as the format wants.
# Each value is a reader above with its key bound, called as the file is rendered: a
# factory of closures would run once, at import, where mutation testing cannot see
# a test reach it (docs/testing.md).
FAMILIES: tuple[tuple[str, Kind, str, Value], ...] = (
    (
        "pulsed_heartbeat_last_success_timestamp_seconds",
        "gauge",
        "When a heartbeat last got a 2xx, in seconds since the epoch.",
        partial(_time_field, key="last_success"),
    ),
    (
        "pulsed_heartbeat_next_due_timestamp_seconds",
        "gauge",
        "When the next heartbeat may be sent, in seconds since the epoch.",
        partial(_time_field, key="next_due"),
    ),
    (
        "pulsed_heartbeats_sent_total",
        "counter",
        "Deliveries that got a 2xx.",
        partial(_field, key="heartbeats_sent"),
    ),
    (
        "pulsed_deliveries_failed_total",
        "counter",
        "Deliveries that ended without a 2xx.",
        partial(_field, key="deliveries_failed"),
    ),
    (
        "pulsed_delivery_attempts_total",
        "counter",
        "HTTP requests made by deliveries, retries included.",
        partial(_field, key="delivery_attempts"),
    ),
    (
        "pulsed_consecutive_failures",
        "gauge",
        "Failed deliveries since the last success.",
        partial(_field, key="failures_in_a_row"),
    ),
    (
        "pulsed_last_delivery_duration_seconds",
        "gauge",
        "How long the last delivery took, all attempts included.",
        partial(_field, key="last_delivery_elapsed_ms", scale=0.001),
    ),
)
RATIO = "pulsed_delivery_success_ratio"
INFO = "pulsed_info"
UP = "pulsed_shop_up"


def escape_label(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value == math.inf else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _head(name: str, kind: Kind, help_text: str) -> str:
    # Every help text is ours and needs no escaping (a test holds that).
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


# Families with a sample per shop, in the file's order: up, then FAMILIES, then the
# ratio; :func:`samples` gives one text for each.
COLUMNS = len(FAMILIES) + 2


def heads(version: str) -> list[str]:
    """What the file holds besides the shops' samples: ``pulsed_info`` for pulsed's
    ``version``, whole, then the ``# HELP`` and ``# TYPE`` lines of each family with a
    sample per shop, in the file's order (:data:`COLUMNS` of them)."""
    info = _head(INFO, "gauge", "Always 1; the version label says which pulsed wrote this file.")
    return [
        f'{info}{INFO}{{version="{escape_label(version)}"}} 1\n',
        _head(UP, "gauge", "1 when the shop's configuration can work, 0 when it is disabled."),
        *(_head(name, kind, help_text) for name, kind, help_text, _ in FAMILIES),
        _head(RATIO, "gauge", "Share of the deliveries in the window (24h, 7d) that got a 2xx."),
    ]


def _up(shop: Mapping[str, Any]) -> int:
    # A state that cannot be read is no reason the shop cannot send; a disabled one is.
    return 0 if shop["problem"] == "disabled" else 1


def samples(shop: Mapping[str, Any]) -> tuple[str, ...]:
    """One shop of the status document as lines of the textfile: :data:`COLUMNS` texts,
    one per family in the file's order, each line ending in a line feed; a family with
    no sample for the shop (a figure not known) has an empty text."""
    label = f'shop="{escape_label(shop["name"])}"'
    texts = [f"{UP}{{{label}}} {_up(shop)}\n"]
    for name, _, _, value in FAMILIES:
        got = value(shop)
        texts.append("" if got is None else f"{name}{{{label}}} {_number(got)}\n")
    ratios = ""
    for window in ("24h", "7d"):
        share = shop[f"delivered_share_{window}"]
        if share is not None:
            ratios += f'{RATIO}{{{label},window="{window}"}} {_number(share)}\n'
    texts.append(ratios)
    return tuple(texts)


def text(version: str, columns: Sequence[Iterable[str]]) -> str:
    """The textfile: each of :func:`heads`, the first alone and each other followed by
    its family's samples; ``columns`` holds, per family (:data:`COLUMNS` of them), every
    shop's text of it (:func:`samples`) in the order the shops are listed."""
    fixed = heads(version)
    parts = [fixed[0]]
    for i, column in enumerate(columns):
        parts += (fixed[i + 1], "".join(column))
    return "".join(parts)


def render(document: Mapping[str, Any], version: str) -> str:
    """The textfile for a whole status ``document``; ``version`` is pulsed's own."""
    per_shop = [samples(shop) for shop in document["shops"]]
    return text(version, [[texts[i] for texts in per_shop] for i in range(COLUMNS)])
