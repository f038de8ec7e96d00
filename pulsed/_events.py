"""Every log ``event`` pulsed writes, declared once with its level and meaning.

An ``event`` is the stable name an operator filters on (``journalctl``, ``jq``,
alerting), so it is part of what pulsed promises, like a command's exit status.
A log call names its event through :func:`event`, whose :data:`EventName` makes a
mistyped name a type error; the tests hold every name logged in the package, and
the README's event table, to :data:`EVENTS`. :data:`FAILURE_REASONS` does the same
for the ``reason`` of a ``heartbeat.failed`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pulsed._errors import Reason

Level = Literal["debug", "info", "warning", "error"]
# Every name of EVENTS, in its order (a test holds the two together).
EventName = Literal[
    "daemon.started",
    "daemon.stopped",
    "daemon.crashed",
    "heartbeat.sent",
    "heartbeat.failed",
    "heartbeat.recovered",
    "heartbeat.error",
    "heartbeat.skipped",
    "heartbeat.resumed",
    "heartbeat.interrupted",
    "heartbeat.withheld",
    "identity.refreshed",
    "identity.failed",
    "identity.missing",
    "collect.unavailable",
    "clock.skew",
    "state.corrupt",
    "state.unreadable",
    "state.unwritable",
    "state.clock_future",
    "status.unwritable",
    "state.locked",
    "state.unlocked",
    "state.adopted",
    "config.invalid",
    "config.warning",
    "config.reloaded",
    "config.reload_failed",
    "notify.failed",
    "shop.disabled",
]


def event(name: EventName, /, **fields: object) -> dict[str, object]:
    """The ``extra`` of a log call writing the event ``name`` with its ``fields``."""
    return {"event": name, **fields}


@dataclass(frozen=True, slots=True)
class Event:
    name: EventName
    level: Level
    means: str


EVENTS: tuple[Event, ...] = (
    Event("daemon.started", "info", "the daemon runs; carries next_due"),
    Event("daemon.stopped", "info", "the daemon stopped on SIGTERM or SIGINT"),
    Event("daemon.crashed", "error", "a command failed in a way nothing mapped; exit 70"),
    Event("heartbeat.sent", "info", "a delivery got a 2xx"),
    Event("heartbeat.failed", "warning", "a delivery ended without a 2xx; carries reason"),
    Event("heartbeat.recovered", "info", "a 2xx after failures: how long, how many"),
    Event("heartbeat.error", "error", "a cycle failed unexpectedly; backed off like a failure"),
    Event("heartbeat.skipped", "info", "once: the heartbeat is not due yet"),
    Event("heartbeat.resumed", "info", "an interrupted delivery is re-sent with its body"),
    Event("heartbeat.interrupted", "warning", "an interrupted delivery is dropped"),
    Event(
        "heartbeat.withheld",
        "error",
        "once: the state cannot be written, so nothing is sent (it would be again next run)",
    ),
    Event("identity.refreshed", "info", "getMe gave the bot's username"),
    Event("identity.failed", "warning", "getMe failed; the kept username, if any, is used"),
    Event("identity.missing", "warning", "no bot token: bot_username is null"),
    Event("collect.unavailable", "warning", "a field of the heartbeat is null, and why"),
    Event("clock.skew", "warning", "the receiver's Date differs from ours by over 60 s"),
    Event("state.corrupt", "warning", "the state file was moved aside"),
    Event("state.unreadable", "warning", "the state file could not be read"),
    Event("state.unwritable", "warning", "the state is kept in memory only"),
    Event("state.clock_future", "warning", "last_success lies in the future"),
    Event("status.unwritable", "warning", "the status or metrics file could not be written"),
    Event("state.locked", "error", "another process holds the state dir; exit 75"),
    Event("state.unlocked", "warning", "the state dir could not be locked; running without"),
    Event("state.adopted", "info", "pulsed adopt moved a shop's state into its folder"),
    Event("config.invalid", "error", "a setting cannot work; exit 78"),
    Event("config.warning", "warning", "a setting works but is risky or unknown"),
    Event("config.reloaded", "info", "SIGHUP: the new configuration is in force"),
    Event("config.reload_failed", "warning", "SIGHUP: the new configuration was refused"),
    Event("notify.failed", "warning", "systemd's notify socket refused a message"),
    Event("shop.disabled", "error", "one shop cannot work and is skipped; the others run"),
)

FAILURE_REASONS: dict[Reason, str] = {
    "connect": "no connection (refused, unreachable, name not resolved)",
    "timeout": "no complete answer within the budget",
    "network": "the connection broke during the exchange",
    "tls": "the receiver's certificate was refused",
    "status": "an HTTP status other than 2xx or 3xx",
    "redirect": "a 3xx, never followed",
    "protocol": "any other error of the HTTP client (a request or answer it cannot handle)",
    "internal": "the cycle failed unexpectedly (after a heartbeat.error line)",
}
