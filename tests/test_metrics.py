"""The Prometheus textfile (contract §11), read back with the Prometheus project's own parser."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsed import _metrics, _status
from pulsed import _state as st
from pulsed._status import ShopView
from tests.support.figures import NOW, VIEWS

REQUIRED = {
    # family name as the parser gives it (a counter without its _total) → type
    "pulsed_heartbeat_last_success_timestamp_seconds": "gauge",
    "pulsed_heartbeat_next_due_timestamp_seconds": "gauge",
    "pulsed_heartbeats_sent": "counter",
    "pulsed_deliveries_failed": "counter",
    "pulsed_delivery_attempts": "counter",
    "pulsed_consecutive_failures": "gauge",
    "pulsed_last_delivery_duration_seconds": "gauge",
    "pulsed_info": "gauge",
}


def parsed(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def rendered(*views: ShopView, version: str = "0.9.0") -> str:
    return _metrics.render(_status.document(list(views), NOW), version)


def test_every_required_metric_is_there_with_help_and_type() -> None:
    text = rendered(VIEWS["healthy"], VIEWS["busy"])
    families = parsed(text)
    assert {name: families[name].type for name in REQUIRED} == REQUIRED
    for family in families.values():
        assert family.documentation, family.name
    # Every family has its own # HELP and # TYPE lines, by the name samples use.
    for line in text.splitlines():
        if not line.startswith("#"):
            name = line.split("{", 1)[0]
            assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name


def test_values_are_the_documents_figures() -> None:
    got = samples(rendered(VIEWS["healthy"], VIEWS["busy"]))
    default = (("shop", "default"),)
    assert got[("pulsed_heartbeat_last_success_timestamp_seconds", default)] == NOW - 12 * 60
    assert got[("pulsed_heartbeat_next_due_timestamp_seconds", default)] == NOW + 48 * 60
    assert got[("pulsed_heartbeats_sent_total", default)] == 168
    assert got[("pulsed_deliveries_failed_total", default)] == 0
    assert got[("pulsed_delivery_attempts_total", default)] == 168
    assert got[("pulsed_consecutive_failures", default)] == 0
    assert got[("pulsed_last_delivery_duration_seconds", default)] == pytest.approx(0.312)
    busy = (("shop", "eu-shop_2"),)
    assert got[("pulsed_deliveries_failed_total", busy)] == 17
    assert got[("pulsed_delivery_attempts_total", busy)] == 151 + 3 * 17
    ratio = (("shop", "eu-shop_2"), ("window", "7d"))
    assert got[("pulsed_delivery_success_ratio", ratio)] == pytest.approx(151 / 168, abs=1e-4)
    assert got[("pulsed_info", (("version", "0.9.0"),))] == 1


def test_a_figure_not_known_has_no_sample() -> None:
    got = samples(rendered(VIEWS["fresh"]))
    fresh = (("shop", "default"),)
    assert ("pulsed_heartbeat_last_success_timestamp_seconds", fresh) not in got
    assert ("pulsed_last_delivery_duration_seconds", fresh) not in got
    assert got[("pulsed_heartbeats_sent_total", fresh)] == 0
    assert not [key for key in got if key[0] == "pulsed_delivery_success_ratio"]


@pytest.mark.parametrize(
    "value",
    ['1.0"} 2\nfake 1', "back\\slash", "new\nline", "not\\na line feed", "ends in \\", "é ☃"],
)
def test_label_values_are_escaped_and_read_back_exactly(value: str) -> None:
    view = ShopView(value, None, st.State(), None)
    text = _metrics.render(_status.document([view], NOW), version=value)
    got = samples(text)
    assert got[("pulsed_info", (("version", value),))] == 1
    assert got[("pulsed_heartbeats_sent_total", (("shop", value),))] == 0
    assert "fake" not in {name for name, _ in got}


def test_no_shop_still_a_valid_file() -> None:
    families = parsed(_metrics.render(_status.document([], NOW), "0.9.0"))
    assert set(REQUIRED) <= set(families)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (0.312, "0.312"),
        (1.8e9, "1800000000"),
        (-2.0, "-2"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        # Whole numbers are written as integers while a float holds every one of them.
        (2.0**53 - 1, "9007199254740991"),
        (-(2.0**53 - 1), "-9007199254740991"),
        (2.0**53, "9007199254740992.0"),
        (-(2.0**53), "-9007199254740992.0"),
        (2.0**54, "1.8014398509481984e+16"),
    ],
)
def test_numbers(value: float, text: str) -> None:
    assert _metrics._number(value) == text


def test_label_escapes_are_the_formats_three() -> None:
    assert _metrics.escape_label('a\\b"c\nd\te') == 'a\\\\b\\"c\\nd\te'


def test_every_help_text_is_written_as_it_is() -> None:
    # The help texts are ours and carry nothing the format would escape (a backslash
    # or a line feed), so each # HELP line is the text itself, read back whole.
    text = rendered(VIEWS["busy"])
    helps = [line.split(" ", 3) for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(_metrics.FAMILIES) + 3  # with pulsed_info, _shop_up, _ratio
    documentation = {family.name: family.documentation for family in parsed(text).values()}
    for _, _, name, help_text in helps:
        assert "\\" not in help_text, name
        assert documentation[name.removesuffix("_total")] == help_text


def test_a_figure_is_scaled_only_where_its_unit_changes() -> None:
    document = {
        "shops": [
            {
                "name": "s",
                "problem": None,
                "last_success": "2026-01-02T03:04:05Z",
                "next_due": "2026-01-02T04:04:05.250Z",
                "heartbeats_sent": 7,
                "deliveries_failed": 3,
                "delivery_attempts": 11,
                "failures_in_a_row": 2,
                "last_delivery_elapsed_ms": 1500,
                "delivered_share_24h": 0.5,
                "delivered_share_7d": 1,
            }
        ]
    }
    got = [line for line in _metrics.render(document, "1").splitlines() if "shop=" in line]
    assert got == [
        'pulsed_shop_up{shop="s"} 1',
        'pulsed_heartbeat_last_success_timestamp_seconds{shop="s"} 1767323045',
        'pulsed_heartbeat_next_due_timestamp_seconds{shop="s"} 1767326645.25',
        'pulsed_heartbeats_sent_total{shop="s"} 7',
        'pulsed_deliveries_failed_total{shop="s"} 3',
        'pulsed_delivery_attempts_total{shop="s"} 11',
        'pulsed_consecutive_failures{shop="s"} 2',
        'pulsed_last_delivery_duration_seconds{shop="s"} 1.5',
        'pulsed_delivery_success_ratio{shop="s",window="24h"} 0.5',
        'pulsed_delivery_success_ratio{shop="s",window="7d"} 1',
    ]


DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_example_in_docs_status_is_what_render_writes() -> None:
    page = (DOCS / "status.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```json\n(.*?)```", page, re.DOTALL)
    text = _metrics.render(json.loads(example), "0.9.0")
    assert f"```text\n{text}```" in page
    assert set(REQUIRED) <= set(parsed(text))


def test_the_grafana_panel_queries_only_metrics_the_textfile_has() -> None:
    panel = json.loads((DOCS / "grafana-panel.json").read_text(encoding="utf-8"))
    names = {
        s.name for f in text_string_to_metric_families(rendered(VIEWS["busy"])) for s in f.samples
    }
    queried = {
        name
        for target in panel["targets"]
        for name in re.findall(r"\bpulsed_[a-z_]+", target["expr"])
    }
    assert queried and queried <= names
    assert panel["type"] == "timeseries"


def test_a_real_daemon_writes_the_textfile_for_every_shop(tmp_path: Path) -> None:
    """`pulsed once` on two shops: node_exporter's parser reads a sample per shop."""
    from devtools.receiver import Receiver
    from tests.support.host import Host
    from tests.support.process import SECRET, run_pulsed

    metrics = tmp_path / "textfile" / "pulsed.prom"
    metrics.parent.mkdir()
    with Receiver(SECRET) as receiver:
        host = Host(tmp_path / "host", receiver.url, ["alpha", "beta"])
        code, _, err = run_pulsed(["once"], {**host.env, "PULSED_METRICS_FILE": str(metrics)})
        assert code == 0, err
    assert metrics.stat().st_mode & 0o777 == 0o644
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    sent = {s.labels["shop"]: s.value for s in families["pulsed_heartbeats_sent"].samples}
    assert sent == {"alpha": 1.0, "beta": 1.0}


def test_every_shop_says_whether_it_can_work_and_a_disabled_one_keeps_its_figures() -> None:
    kept = replace(VIEWS["busy"].state, counters=st.Counters(9, 1, 12))
    off = ShopView("broken", None, kept, None, "disabled", "shop.root")
    unreadable = ShopView("lost", None, st.State(), None, "unreadable")
    got = samples(rendered(VIEWS["healthy"], off, unreadable))
    assert got[("pulsed_shop_up", (("shop", "broken"),))] == 0
    assert got[("pulsed_shop_up", (("shop", "lost"),))] == 1  # its state, not its setting
    assert got[("pulsed_shop_up", (("shop", VIEWS["healthy"].name),))] == 1
    assert got[("pulsed_heartbeats_sent_total", (("shop", "broken"),))] == 9
    assert ("pulsed_heartbeat_next_due_timestamp_seconds", (("shop", "broken"),)) not in got
