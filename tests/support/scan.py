"""The secrets scan (contract §7): what must never show up, where it was looked for, totals.

Every reliability scenario runs with :data:`SECRET` as the heartbeat secret and
:data:`TOKEN` as the bot token; when its lab closes, every captured output, state
file and child dump is searched for them with :func:`leaks_in`. :data:`TOTALS` sums
what all scans of this process looked at, for the soak's report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECRET = "rel-heartbeat-secret-3b9d1f7e"
TOKEN = "424242:rel-bot-key-Zq81xWv0"
# What must never show up: the secret, and the token's key (which also covers the
# whole token and its URL-quoted form).
NEEDLES = (SECRET.encode(), TOKEN.partition(":")[2].encode())


@dataclass
class ScanTotals:
    """What the secrets scans looked at, summed over every lab closed in this process."""

    labs: int = 0
    log_lines: int = 0
    outputs: int = 0
    state_files: int = 0
    child_dumps: int = 0
    live_children: int = 0
    hits: list[str] = field(default_factory=list)

    def add(self, other: ScanTotals) -> None:
        self.labs += other.labs
        self.log_lines += other.log_lines
        self.outputs += other.outputs
        self.state_files += other.state_files
        self.child_dumps += other.child_dumps
        self.live_children += other.live_children
        self.hits += other.hits


TOTALS = ScanTotals()


def leaks_in(where: str, blob: bytes) -> list[str]:
    """One line per needle found in ``blob``, naming ``where`` and only a prefix of it."""
    return [f"{where}: holds {needle.decode()[:6]}…" for needle in NEEDLES if needle in blob]
