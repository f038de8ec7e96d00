"""``pulsed run``: the daemon, from its first signal to its last save.

Signals are taken before the configuration loads, so a stop that comes while the
states load is not lost. A reload (SIGHUP) loads the configuration again and
hands the supervisor the shops' new settings, each pinned to its state folder as
opened at start: ``daemon.state_dir`` changes only on restart.

What start and each reload build lives until the next reload replaces it, and is
frozen out of the cyclic collector's sight (:func:`_long_lived`): a full collection
would otherwise walk every shop's configuration, state and history again, about
75 ms at 2,000 shops, inside a reload or a heartbeat.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from dataclasses import replace

import anyio

from pulsed import _publish, _wiring
from pulsed._config import Setup
from pulsed._delivery import Sender
from pulsed._errors import EX_OK, ConfigError
from pulsed._events import event
from pulsed._notify import Notifier
from pulsed._state import shop_state_dir
from pulsed._supervisor import SIGNALS, Reloaded, Supervisor
from pulsed._timefmt import rfc3339
from pulsed._version import __version__

log = logging.getLogger("pulsed")


def _long_lived() -> None:
    """Everything alive now is kept until a reload replaces it: the cyclic collector
    looks at it no more. What it replaces is freed all the same, by its count of
    references (no shop's objects refer to each other in a cycle); the young
    generations are collected first, so that no cyclic garbage is kept with them."""
    gc.collect(1)
    gc.freeze()


def _reloader(flags: Mapping[str, str], setup: Setup, sender: Sender) -> Reloaded | None:
    """The shops' configurations after a reload; ``None`` when it was refused."""
    _long_lived()  # what the last reload built, before this one builds anew
    try:
        new = _wiring.configure(flags)
    except ConfigError as exc:
        log.warning(
            "configuration reload refused, keeping the running one: %s",
            exc,
            extra=event("config.reload_failed", setting=exc.setting),
        )
        return None
    if new.state_dir != setup.state_dir:
        log.warning(
            "daemon.state_dir changes only on restart; keeping %s",
            setup.state_dir,
            extra=event("config.warning"),
        )
    sender.url = new.shops[0].heartbeat_url
    log.info("configuration reloaded", extra=event("config.reloaded"))
    for setting in ("status_file", "metrics_file"):
        if getattr(new, setting) != getattr(setup, setting):
            log.warning(
                "daemon.%s changes only on restart; keeping %s",
                setting,
                getattr(setup, setting),
                extra=event("config.warning", setting=f"daemon.{setting}"),
            )
    pinned = replace(new, state_dir=setup.state_dir)
    kept = new.state_dir == setup.state_dir  # as it is unless someone edited it
    return Reloaded(
        [
            c if kept else replace(c, state_dir=shop_state_dir(setup.state_dir, c.name))
            for c in new.shops
        ],
        _wiring.disabled_views(pinned),
    )


async def run(flags: Mapping[str, str], notifier: Notifier) -> int:
    with anyio.open_signal_receiver(*SIGNALS) as signals:
        setup = _wiring.loaded(flags)
        if not setup.shops:
            # Exit 78 follows, and the unit's failed state is then the view; the
            # status file says so too, for the admin page that reads it.
            _wiring.publish_refused(setup)
        _wiring.refuse_without_shops(setup)
        async with _wiring.writable(setup) as (shops, sender):
            supervisor = Supervisor(
                list(shops.cycles.values()),
                sender,
                notifier,
                reload_config=lambda: _reloader(flags, setup, sender),
                shops=shops,
                files=_wiring.publisher(setup),
                disabled=_wiring.disabled_views(setup),
            )
            _long_lived()
            cycles = supervisor.cycles
            first = cycles[0].cfg
            one = len(cycles) == 1
            log.info(
                "pulsed %s started for %s",
                __version__,
                first.domain if one else f"{len(cycles)} shops",
                extra=event(
                    "daemon.started",
                    domain=first.domain if one else None,
                    shops=len(cycles),
                    interval=first.interval,
                    state_dir=str(setup.state_dir),
                    next_due=rfc3339(min(c.due().at for c in cycles)),
                ),
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(supervisor.handle_signals, signals)
                if notifier.watchdog_interval:
                    tg.start_soon(supervisor.watchdog, notifier.watchdog_interval)
                await supervisor.run()
                tg.cancel_scope.cancel()
            # Still holding the state folder: the file is this process's to take back.
            _publish.withdraw(setup.status_file)
    log.info("pulsed stopped", extra=event("daemon.stopped"))
    return EX_OK
