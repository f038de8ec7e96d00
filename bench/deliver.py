"""The delivery worker of the benchmark: pulsed's own ``Sender``, many at once.

Figure 4 needs 30 deliveries per fault mode, and a delivery against a silent
server takes its whole 2 s budget; run one after another that alone would be
minutes. So this process runs one round of deliveries concurrently in one event
loop, each to its own fault server (one server per delivery, so the server's
record of connections belongs to exactly one delivery).

It runs in its own process, not in the benchmark's, so that the fault servers'
threads and this event loop do not take the GIL from each other: a late wake-up
here would be charged to pulsed's deadline.

Protocol, one JSON object per line: stdin gets ``{"urls": [...], "body": str,
"headers": {...}}`` per round; stdout answers with ``{"results": [{"url",
"start", "end", "ok", "reason", "attempts"}]}`` (``time.monotonic()`` values,
comparable with the fault servers' since the clock is system-wide). EOF ends it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import anyio

from pulsed._delivery import Sender
from pulsed._errors import DeliveryError


async def _one(
    sender: Sender, body: bytes, headers: Mapping[str, str], into: list[dict[str, Any]]
) -> None:
    start = time.monotonic()
    result: dict[str, Any]
    try:
        done = await sender.send(body, headers)
    except DeliveryError as exc:
        result = {"ok": False, "reason": exc.reason, "attempts": exc.attempts}
    else:
        result = {"ok": True, "reason": None, "attempts": done.attempts}
    into.append({"url": sender.url, "start": start, "end": time.monotonic(), **result})


async def _round(request: dict[str, Any]) -> list[dict[str, Any]]:
    body = str(request["body"]).encode("utf-8")
    headers = {str(k): str(v) for k, v in request["headers"].items()}
    # Built before any clock starts: creating a client loads the CA bundle, which
    # is start-up cost, not delivery time.
    senders = [Sender(str(url) + "/heartbeat") for url in request["urls"]]
    results: list[dict[str, Any]] = []
    try:
        async with anyio.create_task_group() as tg:
            for sender in senders:
                tg.start_soon(_one, sender, body, headers, results)
    finally:
        for sender in senders:
            await sender.aclose()
    return results


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        results = anyio.run(_round, json.loads(line))
        print(json.dumps({"results": results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
