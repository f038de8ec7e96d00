"""The commands that run once and end: ``once``, ``check`` and ``status``.

Each takes the parsed flags and returns an exit code; the wiring they share
(configuration, locked state, the shops' cycles) is :mod:`pulsed._wiring`'s, the
daemon is :mod:`pulsed._daemon`'s.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import anyio

from pulsed import _config, _logging, _schedule, _settings, _status, _wiring
from pulsed._body import Request
from pulsed._config import Config
from pulsed._cycle import Cycle
from pulsed._errors import (
    EX_CONFIG,
    EX_OK,
    EX_TEMPFAIL,
    ConfigError,
    StateError,
    StateUnwritableError,
)
from pulsed._events import event
from pulsed._state import State, StateStore, shop_state_dir, shops_on_disk
from pulsed._status import Problem, ShopView
from pulsed._supervisor import CONCURRENT
from pulsed._timefmt import rfc3339

log = logging.getLogger("pulsed")


# --- once ---------------------------------------------------------------------------


def _print_request(url: str, request: Request) -> None:
    out = sys.stdout
    out.write(f"POST {url}\n")
    for name, value in request.headers.items():
        out.write(f"{name}: {value}\n")
    out.write("\n")
    out.flush()
    # The exact bytes that were signed and nothing after them: a newline here would be
    # part of any body piped on from this output, and break its signature.
    sys.stdout.buffer.write(request.body)
    sys.stdout.buffer.flush()


async def _each(cycles: Iterable[Cycle], work: Callable[[Cycle], Awaitable[bool]]) -> bool:
    """``work`` for every shop, a few at a time, each under its shop's name; all True?"""
    limiter = anyio.CapacityLimiter(CONCURRENT)
    results: list[bool] = []

    async def one(cycle: Cycle) -> None:
        _logging.SHOP.set(cycle.name)
        async with limiter:
            results.append(await work(cycle))

    async with anyio.create_task_group() as tg:
        for cycle in cycles:
            tg.start_soon(one, cycle)
    return all(results)


async def once(
    flags: Mapping[str, str], shops: Sequence[str], *, force: bool, dry_run: bool
) -> int:
    setup = _wiring.configure(flags, shops)
    if dry_run:
        readonly = _wiring.Shops(writable=False)
        for n, cfg in enumerate(setup.shops):
            _logging.SHOP.set(cfg.name)
            request = await readonly.open(cfg).build()
            if setup.listed:
                sys.stdout.write(f"{'' if n == 0 else chr(10) + chr(10)}# shop {cfg.name}\n")
            _print_request(cfg.heartbeat_url, request)
        return EX_OK if not setup.disabled else EX_CONFIG

    # Without --force, a heartbeat goes only with a state kept to say it went: from
    # cron, a once that kept none would send again at every run (contract §12).
    async with _wiring.writable(setup, must_keep=not force) as (opened, sender):

        async def one(cycle: Cycle) -> bool:
            if not force and not cycle.is_due():
                log.info(
                    "heartbeat not due yet",
                    extra=event("heartbeat.skipped", next_due=rfc3339(cycle.due().at)),
                )
                return True
            try:
                return await cycle.deliver(await cycle.prepare(), sender, must_keep=not force)
            except StateUnwritableError as exc:
                withheld(exc)
                return False

        cycles = list(opened.cycles.values())
        sent = await _each(cycles, one)
        views = [c.view() for c in cycles] + _wiring.disabled_views(setup)
        _wiring.publish(setup, views)  # by name, as the daemon writes them
    return EX_OK if sent and not setup.disabled else EX_TEMPFAIL


def withheld(exc: StateUnwritableError) -> None:
    """The one line of a ``once`` that sends nothing because it cannot keep its state."""
    log.error(
        "%s; sending nothing, as the next run would send again (pulsed once --force sends)",
        exc,
        extra=event("heartbeat.withheld", folder=exc.folder, reason=exc.why),
    )


# --- check --------------------------------------------------------------------------


def describe(cfg: Config) -> list[tuple[str, str, str]]:
    """Each setting of a shop as ``check`` lists it: key, value (never a secret's), source."""
    rows = []
    for setting in _settings.SETTINGS:
        source = cfg.sources.get(setting.key, "default")
        if setting.secret:
            value = "(not set)" if source == "default" else "(set, not shown)"
        else:
            attr = getattr(cfg, setting.field)
            value = "(not set)" if attr is None else str(attr)
        if setting.key == "shop.domain" and source == "default":
            source = "config.php"
        rows.append((setting.key, value, source))
    return rows


async def check(flags: Mapping[str, str], shops: Sequence[str]) -> int:
    setup = _wiring.configure(flags, shops)
    # Names and paths come from file names and the config file: shown escaped, never
    # obeyed by the terminal (a shops.d name may hold ESC or a newline).
    say = _status.printable
    print(say(f"configuration: ok ({setup.config_file or 'no config file'})"))
    readonly = _wiring.Shops(writable=False)
    for cfg in setup.shops:
        _logging.SHOP.set(cfg.name)
        if setup.listed:
            print(f"shop {cfg.name}:")
        for name, value, source in describe(cfg):
            print(say(f"  {name:24} {value}  [{source}]"))
        request = await readonly.open(cfg).build()
        print("would send:")
        print(json.dumps(json.loads(request.body), indent=2, ensure_ascii=False))
    print("summary:")
    results = [(c.name, "ok") for c in setup.shops]
    results += [(off.name, f"cannot work: {off.error}") for off in setup.disabled]
    for name, result in sorted(results):
        print(say(f"  {name}: {result}"))
    return EX_CONFIG if setup.disabled else EX_OK


# --- status -------------------------------------------------------------------------


def _read(store: StateStore, name: str) -> tuple[State, Problem | None, str | None]:
    """A shop's state as on disk, or an empty one with its problem and a hint to print."""
    try:
        return store.read() or State(), None, None
    except StateError as exc:
        problem: Problem = "corrupt" if exc.corrupt else "unreadable"
        hint = str(exc)
        if isinstance(exc.__cause__, PermissionError):
            # The usual case on a systemd host: the state belongs to the service's user.
            hint = (
                f"{store.path} cannot be read: permission denied; run as root or as the "
                "service's user (e.g. sudo pulsed status)"
            )
        return State(), problem, f"shop {name}: {hint}"


def status(
    flags: Mapping[str, str], shops: Sequence[str], as_json: bool, *, failing: bool = False
) -> int:
    """Read only the state files; the configuration, when it loads, adds domains and names.

    No secret is needed: ``status`` sends nothing. A shop whose configuration cannot
    work is listed as ``disabled`` with its figures, and its reason is printed after.
    """
    now = time.time()
    top = _config.load_state_dir(flags, os.environ)
    configs: dict[str, Config] = {}
    disabled: dict[str, str] = {}
    hints: list[str] = []
    try:
        setup = _config.load_setup(flags, os.environ, secrets=False)
        configs = {c.name: c for c in setup.shops}
        disabled = {d.name: d.error.setting for d in setup.disabled}
        hints += [f"shop {d.name}: disabled: {d.error}" for d in setup.disabled]
        names = sorted([*configs, *disabled])
    except ConfigError as exc:
        names = shops_on_disk(top)
        hints.append(f"configuration: {exc}")
    if shops:
        names = list(dict.fromkeys(shops))
    views: list[ShopView] = []
    for name in names:
        state, problem, hint = _read(StateStore(shop_state_dir(top, name)), name)
        if hint is not None:
            hints.append(hint)
        cfg = configs.get(name)
        if name in disabled and problem is None:  # a state it cannot read says more
            views.append(ShopView(name, None, state, None, "disabled", disabled[name]))
            continue
        due = _schedule.shown_due(state, now, cfg.interval if cfg is not None else None)
        views.append(ShopView(name, cfg.domain if cfg else None, state, due, problem))
    doc = _status.document(views, now)
    if failing:
        doc["shops"] = [s for s in doc["shops"] if _status.health(s) not in ("ok", "waiting")]
    if as_json:
        if hints:
            doc["errors"] = hints
        print(json.dumps(doc, ensure_ascii=False))
        return EX_OK
    one = len(names) == 1 or bool(shops)
    sys.stdout.write((_status.text if one else _status.table)(doc, now))
    for hint in hints:
        print(_status.printable(hint))
    return EX_OK
