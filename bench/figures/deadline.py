"""Figure 4: the delivery deadline under six receiver faults, against ``curl -m 2 --retry 2``.

pulsed's own ``Sender`` delivers in a worker process (``bench/deliver.py``), each
delivery to a ``FaultServer`` of its own; the time is taken at the receiver
(first connection opened to last closed) and at the client (around ``send()``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

from _harness import PYTHON, REPO, Bench
from _report import Row, Section, ratio, verdict

from devtools.faultserver import FaultServer, Reply, reset, silent, status, trickle

DEADLINE_TARGET = 2.05


FAULTS: tuple[tuple[str, Callable[[], Reply]], ...] = (
    ("silent", silent),
    ("byte-by-byte (0.1 s/byte)", lambda: trickle(0.1)),
    ("reset", reset),
    ("503", lambda: status(503)),
    ("503 Retry-After: 1", lambda: status(503, {"Retry-After": "1"})),
    ("429", lambda: status(429)),
)


@contextlib.contextmanager
def fault_servers(n: int, reply: Callable[[], Reply]) -> Iterator[list[FaultServer]]:
    servers = [FaultServer().start() for _ in range(n)]
    try:
        for server in servers:
            server.plan(then=reply())
        yield servers
    finally:
        for server in servers:
            server.stop()


def receiver_span(server: FaultServer) -> float:
    """First connection opened to last connection closed, as the server saw them."""
    with contextlib.suppress(TimeoutError):
        server.wait_for_closed(len(server.connections), timeout=10)
    conns = server.connections
    if not conns:
        return 0.0
    closed = [c.closed_at if c.closed_at is not None else math.inf for c in conns]
    return max(closed) - min(c.opened_at for c in conns)


def measure(bench: Bench) -> list[Section]:
    plan = bench.plan
    section = Section("4. Delivery deadline under faults")
    request = bench.signed_request()
    env = dict(os.environ, PYTHONPATH=str(bench.tree))
    worker = subprocess.Popen(
        [PYTHON, str(REPO / "bench" / "deliver.py")],
        cwd=bench.tree,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if worker.stdin is None or worker.stdout is None:
        raise RuntimeError("the delivery worker has no pipes")
    body_file = bench.fresh_dir("curl-faults") / "body.json"
    body_file.write_text(request["body"])
    curl_head = ["curl", "-sS", "-o", "/dev/null", "-m", "2", "--retry", "2"]
    curl_head += ["--data-binary", f"@{body_file}"]
    for name, value in request["headers"].items():
        curl_head += ["-H", f"{name}: {value}"]
    try:
        for label, reply in FAULTS:
            server_spans: list[float] = []
            client_spans: list[float] = []
            outcomes: dict[str, int] = {}
            for first in range(0, plan.deliveries, plan.concurrency):
                n = min(plan.concurrency, plan.deliveries - first)
                with fault_servers(n, reply) as servers:
                    urls = [s.url for s in servers]
                    line = {"urls": urls, "body": request["body"], "headers": request["headers"]}
                    worker.stdin.write(json.dumps(line) + "\n")
                    worker.stdin.flush()
                    results = json.loads(worker.stdout.readline())["results"]
                    for r in results:
                        client_spans.append(r["end"] - r["start"])
                        key = "ok" if r["ok"] else f"{r['reason']}×{r['attempts']}"
                        outcomes[key] = outcomes.get(key, 0) + 1
                    server_spans += [receiver_span(s) for s in servers]
            curl_server, curl_client = curl_under_fault(curl_head, reply, plan.deliveries)
            worst_server, worst_client = max(server_spans), max(client_spans)
            section.rows.append(
                Row(
                    f"4 deadline, {label}: receiver / client",
                    f"{worst_server:.3f} / {worst_client:.3f} s",
                    f"{max(curl_server):.3f} / {max(curl_client):.3f} s (curl)",
                    ratio(max(worst_server, worst_client), max(max(curl_server), max(curl_client))),
                    f"≤ {DEADLINE_TARGET} s",
                    verdict(max(worst_server, worst_client) <= DEADLINE_TARGET),
                )
            )
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
            section.notes.append(
                f"{label}: pulsed worst of {len(client_spans)} — receiver "
                f"{worst_server:.3f} s, client {worst_client:.3f} s; median client "
                f"{statistics.median(client_spans):.3f} s; outcomes ({shown})."
            )
    finally:
        worker.stdin.close()
        worker.wait(30)
    section.notes.insert(
        0,
        f"pulsed: `pulsed._delivery.Sender.send` (the daemon's delivery code), "
        f"{plan.deliveries} deliveries per fault, {plan.concurrency} at a time in one "
        f"event loop of a separate process (`bench/deliver.py`), each to its own "
        f"`FaultServer` so the server's connection record belongs to one delivery. "
        f"Receiver: first `opened_at` to last `closed_at` of that server; client: around "
        f"`send()`. curl: `curl -m 2 --retry 2` on the same faults, "
        f"{plan.deliveries} at once, its wall time from spawn to exit; `-m` bounds each "
        f"try, not the whole, and `--retry` waits 1 s, then 2 s (or `Retry-After`) "
        f"between tries, so it overruns 2 s on every retried fault, while it gives up "
        f"on a reset at once (not a transient error to curl).",
    )
    return [section]


def curl_under_fault(
    head: list[str], reply: Callable[[], Reply], n: int
) -> tuple[list[float], list[float]]:
    """``n`` concurrent curls, each to its own faulty server; (receiver, client) spans."""
    spans: list[float] = [0.0] * n
    with fault_servers(n, reply) as servers:

        def one(i: int) -> None:
            start = time.monotonic()
            subprocess.run(
                [*head, servers[i].url + "/heartbeat"],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            spans[i] = time.monotonic() - start

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [receiver_span(s) for s in servers], spans
