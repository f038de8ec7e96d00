"""The I/O floor of one heartbeat: what any agent on pulsed's libraries must pay.

One heartbeat's unavoidable work, in one process, on the libraries the daemon uses
and nothing of pulsed's: an ``httpx.AsyncClient`` POST of a signed body (no
keep-alive, as the daemon's client) and two atomic writes of a state file (temp
file created exclusively, written, fsynced, renamed, the folder fsynced), as
contract §5 asks of every save and as a delivery needs twice (the body in flight,
then the outcome). Figure 10 divides the daemon's CPU per heartbeat by this.

Reads one JSON object on stdin: ``{"url", "body", "headers", "folder", "state",
"rounds", "warm", "gap", "threaded"}`` (``state``: the bytes to save, as text; ``gap``,
optional: seconds asleep after each measured round, 0 by default; ``threaded``,
optional: each save in a worker thread, as a daemon serving many shops makes it so
that a slow disk holds up no other shop). Runs ``warm`` rounds back
to back, then ``rounds`` measured ones, and prints ``{"cpu_per_round": seconds,
"wall_per_round": seconds}``: this process's own utime+stime (``getrusage``)
over the measured rounds, divided by their number. Run by ``bench/bench.py``.

Back to back, each round finds the last one's code and data still in the CPU's
caches. A daemon's heartbeat, one at a time, starts from an hour's sleep (in the
benchmark, seconds) with other work run in between; with ``gap`` the floor's rounds
are one at a time too, and each pays its own wake from sleep, as a heartbeat does.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import sys
import time
from typing import Any

import anyio
import httpx


def _save(dir_fd: int, data: bytes) -> None:
    tmp = f".state.json.tmp-{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, "state.json", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _main(job: dict[str, Any]) -> dict[str, float]:
    body = job["body"].encode()
    state = job["state"].encode()
    dir_fd = os.open(job["folder"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    async with httpx.AsyncClient(
        follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0), timeout=2.0
    ) as client:

        async def save() -> None:
            if job.get("threaded"):
                await anyio.to_thread.run_sync(_save, dir_fd, state)
            else:
                _save(dir_fd, state)

        async def beat() -> None:
            await save()
            response = await client.post(job["url"], content=body, headers=job["headers"])
            response.raise_for_status()
            await save()

        for _ in range(job["warm"]):
            await beat()
        cpu0, wall0 = _cpu(), time.monotonic()
        for _ in range(job["rounds"]):
            await beat()
            if job.get("gap"):
                await anyio.sleep(job["gap"])
        cpu, wall = _cpu() - cpu0, time.monotonic() - wall0
    os.close(dir_fd)
    return {"cpu_per_round": cpu / job["rounds"], "wall_per_round": wall / job["rounds"]}


def main() -> int:
    job = json.loads(sys.stdin.read())
    print(json.dumps(anyio.run(_main, job)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
