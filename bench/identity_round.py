"""One identity round, as the daemon runs it, and what its child cost.

Reads ``{"tokens": [...], "api_base": str, "timeout": float}`` as JSON on stdin,
awaits :func:`pulsed._identity.fetch_usernames` once (one ``pulsed._identity_child``
for every token, aiogram imported once) and prints one JSON line: ``{"cpu", "wall",
"answered"}``: the child's user+system CPU from ``getrusage(RUSAGE_CHILDREN)``
around the round (this process reaps no other child), the round's wall time, and
how many tokens got a username. Run by ``bench/bench.py`` with the measured tree on
``PYTHONPATH``; not meant to be started by hand.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import anyio

from pulsed._identity import fetch_usernames


def main() -> int:
    request = json.loads(sys.stdin.read())
    tokens = [str(t) for t in request["tokens"]]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    answers = anyio.run(
        fetch_usernames, tokens, str(request["api_base"]), float(request["timeout"]), env
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    answered = sum(1 for name in answers.values() if isinstance(name, str))
    print(json.dumps({"cpu": cpu, "wall": wall, "answered": answered}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
