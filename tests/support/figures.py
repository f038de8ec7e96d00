"""Shop states with known figures, shared by the status, metrics and admin-page tests."""

from __future__ import annotations

import json
from pathlib import Path

from pulsed import _state as st
from pulsed._status import ShopView

# The published schema of the status document.
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "status.schema.json").read_text("utf-8")
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR = 3600.0
SECRET = "hb-secret-Zq8"
TOKEN = "123456:AAE-token-Zq8"
FINGERPRINT = "hmac-sha256:9c1f0e7d"
VERSIONS = ("8.2.7", "1.4.0", "4.0.2.3", "4.0.2.3-oc")


def week_of_deliveries(failed_every: int = 0) -> st.State:
    """168 hourly deliveries ending 12 minutes ago; every ``failed_every``-th one failed."""
    state = st.State(identity=st.Identity("acme_shop_bot", NOW - 5 * HOUR, FINGERPRINT))
    for i in range(168):
        at = NOW - 12 * 60 - (167 - i) * HOUR
        if failed_every and i % failed_every == 0:
            state = st.failed(
                state, at, "status: HTTP 503", 503, at + 300, reason="status", attempts=3, elapsed=2
            )
        else:
            state = st.succeeded(state, at, 200, at + HOUR, attempts=1, elapsed=0.312)
    return state


def a_busy_state() -> st.State:
    """Everything a state can hold, secrets' neighbours included."""
    body = json.dumps(
        {
            "domain": "shop.example",
            "php_version": VERSIONS[0],
            "module_version": VERSIONS[1],
            "ecommerce_version": VERSIONS[2],
            "ecommerce_core_version": VERSIONS[3],
        }
    )
    return st.with_pending(week_of_deliveries(failed_every=10), body.encode(), NOW, "sha256=ab")


VIEWS = {
    "fresh": ShopView("default", "shop.example", st.State(), None),
    "healthy": ShopView("default", "shop.example", week_of_deliveries(), NOW + 48 * 60),
    "busy": ShopView("eu-shop_2", "xn--shp-qla.example", a_busy_state(), NOW),
    "unreadable": ShopView("broken", None, st.State(), None, "unreadable"),
}
