"""The Prometheus textfile: the status document's figures for node_exporter.

:func:`render` turns a status document (:func:`pulsed._status.document`) into the
Prometheus text exposition format 0.0.4, one family per figure, each with
``# HELP`` and ``# TYPE``, every sample labelled ``shop``. It is pure and written
by hand rather than through ``prometheus_client``: the format is a few lines of
text, and the library would stay imported in the daemon for the whole of its
life (docs/status.md has the measured cost). A figure that is not known (no
success yet) has no sample rather than a made-up value, so ``absent()`` and
``time() - …`` alerts behave.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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


def _family(name: str, kind: Kind, help_text: str, samples: list[str]) -> list[str]:
    # Every help text is ours and needs no escaping (a test holds that).
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def _up(shop: Mapping[str, Any]) -> int:
    # A state that cannot be read is no reason the shop cannot send; a disabled one is.
    return 0 if shop["problem"] == "disabled" else 1


def render(document: Mapping[str, Any], version: str) -> str:
    """The textfile for ``document``; ``version`` is pulsed's own, for ``pulsed_info``."""
    shops = document["shops"]
    lines = _family(
        INFO,
        "gauge",
        "Always 1; the version label says which pulsed wrote this file.",
        [f'{INFO}{{version="{escape_label(version)}"}} 1'],
    )
    lines += _family(
        UP,
        "gauge",
        "1 when the shop's configuration can work, 0 when it is disabled.",
        [f'{UP}{{shop="{escape_label(shop["name"])}"}} {_up(shop)}' for shop in shops],
    )
    for name, kind, help_text, value in FAMILIES:
        samples = []
        for shop in shops:
            got = value(shop)
            if got is not None:
                samples.append(f'{name}{{shop="{escape_label(shop["name"])}"}} {_number(got)}')
        lines += _family(name, kind, help_text, samples)
    ratios = []
    for shop in shops:
        for window in ("24h", "7d"):
            share = shop[f"delivered_share_{window}"]
            if share is not None:
                labels = f'shop="{escape_label(shop["name"])}",window="{window}"'
                ratios.append(f"{RATIO}{{{labels}}} {_number(share)}")
    lines += _family(
        RATIO,
        "gauge",
        "Share of the deliveries in the window (24h, 7d) that got a 2xx.",
        ratios,
    )
    return "\n".join(lines) + "\n"
