"""What the metrics textfile costs in idle memory, written by hand or with prometheus_client.

Each measurement is a fresh interpreter that first imports what the daemon
already holds (anyio, httpx, tenacity, python-json-logger and pulsed's status
document), reads its RSS and PSS from ``/proc/self/smaps_rollup``, then imports
one renderer, renders the textfile of a status document of ``--shops`` shops,
drops everything it can and reads them again. The difference is what that
choice keeps resident for the daemon's whole life. Run as
``python bench/metrics_memory.py [--runs 7] [--shops 1]``; prints the median
of each variant. Writes nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import gc, json, sys
import anyio, httpx, tenacity
from pythonjsonlogger.json import JsonFormatter
from pulsed import _state as st, _status
from pulsed._status import ShopView

def memory():
    found = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                found[key] = int(rest.split()[0])
    return found

NOW = 1_800_000_000.0
state = st.State(last_success=NOW - 720, next_due=NOW + 2880)
for i in range(168):
    at = NOW - 720 - (167 - i) * 3600
    state = st.succeeded(state, at, 200, at + 3600, attempts=1, elapsed=0.3)
shops = int(sys.argv[2])
doc = _status.document([ShopView(f"shop{i}", "shop.example", state, NOW + 2880)
                        for i in range(shops)], NOW)
gc.collect()
before = memory()

if sys.argv[1] == "hand":
    from pulsed import _metrics
    text = _metrics.render(doc, "0.9.0")
else:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Figures:
        def __init__(self, doc):
            self.doc = doc

        def collect(self):
            info = GaugeMetricFamily("pulsed_info", "Always 1.", labels=["version"])
            info.add_metric(["0.9.0"], 1)
            yield info
            # The same families and sample count as _metrics.render; for memory, which
            # field fills a timestamp does not matter.
            C, G = CounterMetricFamily, GaugeMetricFamily
            for name, key, kind in (
                ("pulsed_heartbeats_sent", "heartbeats_sent", C),
                ("pulsed_deliveries_failed", "deliveries_failed", C),
                ("pulsed_delivery_attempts", "delivery_attempts", C),
                ("pulsed_consecutive_failures", "failures_in_a_row", G),
                ("pulsed_last_delivery_duration_seconds", "last_delivery_elapsed_ms", G),
                ("pulsed_heartbeat_last_success_timestamp_seconds", "heartbeats_sent", G),
                ("pulsed_heartbeat_next_due_timestamp_seconds", "heartbeats_sent", G),
                ("pulsed_delivery_success_ratio", "delivered_share_7d", G),
            ):
                family = kind(name, name, labels=["shop"])
                for shop in self.doc["shops"]:
                    family.add_metric([shop["name"]], shop[key])
                yield family

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Figures(doc))
    text = generate_latest(registry).decode()

assert "pulsed_heartbeats_sent_total" in text
del text
gc.collect()
after = memory()
print(json.dumps({k: after[k] - before[k] for k in after}))
"""


def measure(variant: str, shops: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, variant, str(shops)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--shops", type=int, default=1)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.shops} shop(s), median of {args.runs} runs")
    for variant in ("hand", "prometheus_client"):
        runs = [measure(variant, args.shops) for _ in range(args.runs)]
        rss = statistics.median(r["Rss"] for r in runs)
        pss = statistics.median(r["Pss"] for r in runs)
        print(f"{variant:18} RSS +{rss:.0f} KiB  PSS +{pss:.0f} KiB")


if __name__ == "__main__":
    main()
