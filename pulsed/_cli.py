"""The ``pulsed`` command: parse arguments, wire the edges, return an exit code.

``main()`` never raises for an expected failure: a configuration that cannot work
is one ``config.invalid`` line and exit 78, a held state folder is exit 75, and
everything else the daemon meets is a warning inside the loop. This is the only
module that touches ``os.environ``, signals and the real clock directly.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import anyio

from pulsed import (
    _collect,
    _config,
    _discover,
    _identity,
    _logging,
    _publish,
    _schedule,
    _settings,
    _status,
)
from pulsed import _state as st
from pulsed._config import Config, Setup
from pulsed._cycle import Cycle
from pulsed._delivery import Sender
from pulsed._errors import (
    EX_CONFIG,
    EX_OK,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    ConfigError,
    LockHeldError,
    StateError,
)
from pulsed._files import remove_leftovers
from pulsed._notify import Notifier
from pulsed._redact import REDACT
from pulsed._signing import headers_for
from pulsed._status import Problem, ShopView
from pulsed._supervisor import CONCURRENT, SIGNALS, Supervisor
from pulsed._timefmt import rfc3339
from pulsed._version import __version__

log = logging.getLogger("pulsed")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse echoes unknown arguments, values and all; a secret pasted on the
        # command line must not be printed back, so only option names are kept.
        if message.startswith("unrecognized arguments:"):
            words = message.split(":", 1)[1].split()
            names = [w.split("=", 1)[0] for w in words if w.startswith("-")]
            message = "unrecognized arguments: " + (" ".join(names) or "(values not shown)")
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override environment and config file)")
    group.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="TOML config file (default $PULSED_CONFIG or /etc/pulsed/pulsed.toml)",
    )
    for flag, name in _settings.FLAG_SETTINGS.items():
        group.add_argument(
            f"--{flag}",
            dest=f"flag_{flag}",
            metavar="VALUE",
            default=argparse.SUPPRESS,
            help=f"{name}",
        )
    for flag in _settings.REFUSED_FLAGS:
        group.add_argument(
            f"--{flag}",
            dest=f"secret_{flag}",
            nargs="?",
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pulsed", description="Send the AcmeShop Pulse heartbeat of one shop.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    _add_setting_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="the daemon, in the foreground")
    once = sub.add_parser("once", help="one heartbeat now, if due")
    once.add_argument("--force", action="store_true", help="send even if not due")
    once.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send and write nothing"
    )
    status = sub.add_parser("status", help="what the state says")
    status.add_argument("--json", action="store_true", help="as one JSON object")
    check = sub.add_parser("check", help="validate the configuration and show what would be sent")
    for each in (once, status, check):
        each.add_argument(
            "--shop",
            action="append",
            default=[],
            metavar="NAME",
            help="only this shop (repeatable; default: every shop)",
        )
    for each in (run, once, status, check):
        _add_setting_flags(each)
    discover = sub.add_parser(
        "discover", help="find OpenCart/ocStore shops with the module; print [shops.*] tables"
    )
    discover.add_argument("dirs", nargs="+", metavar="DIR", help="where to look")
    return parser


def flags_of(args: argparse.Namespace) -> dict[str, str]:
    values = vars(args)
    for key in values:
        if key.startswith("secret_"):
            name = _settings.REFUSED_FLAGS[key.removeprefix("secret_")]
            raise ConfigError(
                name,
                "is never taken from the command line; use a systemd "
                "credential, the environment or the config file",
            )
    flags = {k.removeprefix("flag_"): v for k, v in values.items() if k.startswith("flag_")}
    if "config" in values:
        flags["config"] = values["config"]
    return flags


# --- shared wiring ----------------------------------------------------------


def _configure(flags: Mapping[str, str], shops: Sequence[str] = ()) -> Setup:
    return _apply(_config.load_setup(flags, os.environ).select(shops))


def _apply(setup: Setup) -> Setup:
    """Put a loaded configuration in force: its log level, its secrets, its warnings.

    Each shop that cannot work is one ``shop.disabled`` error; with none that can,
    the configuration is refused (for the one-shop configuration, with its own error).
    """
    _logging.set_level(setup.log_level)
    REDACT.register(setup.secrets())
    for warning in setup.warnings:
        log.warning(warning, extra={"event": "config.warning"})
    if not setup.listed:
        if setup.disabled:
            raise setup.disabled[0].error
        return setup
    for off in setup.disabled:
        log.error(
            "shop %s cannot work and is skipped: %s",
            off.name,
            off.error,
            extra={"event": "shop.disabled", "shop": off.name, "setting": off.error.setting},
        )
    if not setup.shops:
        raise ConfigError("shops", f"no shop can work ({len(setup.disabled)} disabled)")
    return setup


def _lock(directory: Path) -> st.StateLock | None:
    lock = st.StateLock(directory)
    try:
        lock.acquire()
    except StateError as exc:
        log.warning(
            "%s; running without the single-instance lock", exc, extra={"event": "state.unlocked"}
        )
        return None
    return lock


def _opener(*, writable: bool) -> Callable[[Config], Cycle]:
    """Opens shops' cycles that share one identity round and one php version cache."""
    identities = _identity.Rounds()
    collect = functools.partial(_collect.collect, php=_collect.PhpVersions())

    def open_cycle(cfg: Config) -> Cycle:
        named = _logging.SHOP.set(cfg.name)  # a state moved aside while opening names its shop
        try:
            return Cycle.open(
                cfg, writable=writable, environ=os.environ, identities=identities, collect=collect
            )
        finally:
            _logging.SHOP.reset(named)

    return open_cycle


def _publisher(setup: Setup) -> Callable[[Sequence[Cycle]], bool]:
    """Writes the status file and the metrics textfile from the shops' cycles.

    Their paths are taken at start and kept across reloads, like the state folder:
    the unit made their folder for this process.
    """
    first = setup.shops[0]

    def publish(cycles: Sequence[Cycle]) -> bool:
        if first.status_file is None and first.metrics_file is None:
            return True  # nothing to write: no view of every shop to build
        return _publish.publish(
            [c.view() for c in cycles],
            time.time(),
            status_file=first.status_file,
            metrics_file=first.metrics_file,
            version=__version__,
        )

    return publish


@contextlib.asynccontextmanager
async def _writable(
    setup: Setup,
) -> AsyncIterator[tuple[list[Cycle], Sender, Callable[[Config], Cycle]]]:
    """Every shop's cycle with the state folder locked, and a sender; closed after."""
    st.check_private(setup.state_dir)
    lock = _lock(setup.state_dir)
    open_cycle = _opener(writable=True)
    cycles = [open_cycle(cfg) for cfg in setup.shops]
    if lock is not None:
        for cycle in cycles:
            cycle.store.sweep()
        for public in (setup.shops[0].status_file, setup.shops[0].metrics_file):
            if public is not None:
                remove_leftovers(public)
    # Every cycle's identity round also takes the other shops' stale tokens.
    cycles[0].identities.wanted = lambda: [t for c in cycles if (t := c.stale_token())]
    sender = Sender(setup.shops[0].heartbeat_url)
    try:
        yield cycles, sender, open_cycle
    finally:
        await sender.aclose()
        if lock is not None:
            lock.release()


# --- commands ---------------------------------------------------------------


async def _run(flags: Mapping[str, str], notifier: Notifier) -> int:
    # Signals are taken first: a stop that comes while the state loads is not lost.
    with anyio.open_signal_receiver(*SIGNALS) as signals:
        setup = _configure(flags)
        async with _writable(setup) as (cycles, sender, open_cycle):

            def reload() -> list[Config] | None:
                try:
                    new = _apply(_config.load_setup(flags, os.environ))
                except ConfigError as exc:
                    log.warning(
                        "configuration reload refused, keeping the running one: %s",
                        exc,
                        extra={"event": "config.reload_failed", "setting": exc.setting},
                    )
                    return None
                if new.state_dir != setup.state_dir:
                    log.warning(
                        "daemon.state_dir changes only on restart; keeping %s",
                        setup.state_dir,
                        extra={"event": "config.warning"},
                    )
                sender.url = new.shops[0].heartbeat_url
                log.info("configuration reloaded", extra={"event": "config.reloaded"})
                return [
                    replace(c, state_dir=st.shop_state_dir(setup.state_dir, c.name))
                    for c in new.shops
                ]

            supervisor = Supervisor(
                cycles,
                sender,
                notifier,
                reload_config=reload,
                open_cycle=open_cycle,
                publish=_publisher(setup),
            )
            cycles[0].identities.wanted = lambda: [
                t for c in supervisor.cycles if (t := c.stale_token())
            ]
            first = cycles[0].cfg
            log.info(
                "pulsed %s started for %s",
                __version__,
                first.domain if len(cycles) == 1 else f"{len(cycles)} shops",
                extra={
                    "event": "daemon.started",
                    "domain": first.domain if len(cycles) == 1 else None,
                    "shops": len(cycles),
                    "interval": first.interval,
                    "state_dir": str(setup.state_dir),
                    "next_due": rfc3339(min(c.due().at for c in cycles)),
                },
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(supervisor.handle_signals, signals)
                if notifier.watchdog_interval:
                    tg.start_soon(supervisor.watchdog, notifier.watchdog_interval)
                await supervisor.run()
                tg.cancel_scope.cancel()
    log.info("pulsed stopped", extra={"event": "daemon.stopped"})
    return EX_OK


def _print_request(url: str, body: bytes, headers: Mapping[str, str]) -> None:
    out = sys.stdout
    out.write(f"POST {url}\n")
    for name, value in headers.items():
        out.write(f"{name}: {value}\n")
    out.write("\n")
    out.flush()
    # The exact bytes that were signed and nothing after them: a newline here would be
    # part of any body piped on from this output, and break its signature.
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()


async def _each(cycles: Sequence[Cycle], work: Callable[[Cycle], Awaitable[bool]]) -> bool:
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


async def _once(
    flags: Mapping[str, str], shops: Sequence[str], *, force: bool, dry_run: bool
) -> int:
    setup = _configure(flags, shops)
    if dry_run:
        open_cycle = _opener(writable=False)
        for n, cfg in enumerate(setup.shops):
            _logging.SHOP.set(cfg.name)
            prepared = await open_cycle(cfg).build()
            if setup.listed:
                sys.stdout.write(f"{'' if n == 0 else chr(10) + chr(10)}# shop {cfg.name}\n")
            headers = headers_for(prepared.body, cfg.heartbeat_secret.reveal())
            _print_request(cfg.heartbeat_url, prepared.body, headers)
        return EX_OK if not setup.disabled else EX_CONFIG

    async with _writable(setup) as (cycles, sender, _):

        async def one(cycle: Cycle) -> bool:
            if not force and not cycle.is_due():
                log.info(
                    "heartbeat not due yet",
                    extra={"event": "heartbeat.skipped", "next_due": rfc3339(cycle.due().at)},
                )
                return True
            return await cycle.deliver(await cycle.prepare(), sender)

        sent = await _each(cycles, one)
        _publisher(setup)(cycles)
    return EX_OK if sent and not setup.disabled else EX_TEMPFAIL


def _describe(cfg: Config) -> list[tuple[str, str, str]]:
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


async def _check(flags: Mapping[str, str], shops: Sequence[str]) -> int:
    setup = _configure(flags, shops)
    print(f"configuration: ok ({setup.config_file or 'no config file'})")
    open_cycle = _opener(writable=False)
    for cfg in setup.shops:
        _logging.SHOP.set(cfg.name)
        if setup.listed:
            print(f"shop {cfg.name}:")
        for name, value, source in _describe(cfg):
            print(f"  {name:24} {value}  [{source}]")
        prepared = await open_cycle(cfg).build()
        print("would send:")
        print(json.dumps(json.loads(prepared.body), indent=2, ensure_ascii=False))
    for off in setup.disabled:
        print(f"shop {off.name}: cannot work: {off.error}")
    return EX_CONFIG if setup.disabled else EX_OK


def _show_status(flags: Mapping[str, str], shops: Sequence[str], as_json: bool) -> int:
    """Read only the state files; the configuration, when it loads, adds domains and names."""
    now = time.time()
    top = _config.load_state_dir(flags, os.environ)
    configs: dict[str, Config] = {}
    try:
        setup = _config.load_setup(flags, os.environ)
        configs = {c.name: c for c in setup.shops}
        names = [*configs, *(d.name for d in setup.disabled)]
    except ConfigError:
        names = st.shops_on_disk(top)
    if shops:
        names = list(dict.fromkeys(shops))
    views: list[ShopView] = []
    hints: list[str] = []
    for name in names:
        store = st.StateStore(st.shop_state_dir(top, name))
        cfg = configs.get(name)
        problem: Problem | None = None
        try:
            state = store.read() or st.State()
        except StateError as exc:
            state, problem = st.State(), "corrupt" if exc.corrupt else "unreadable"
            hint = str(exc)
            if isinstance(exc.__cause__, PermissionError):
                # The usual case on a systemd host: the state belongs to the service's user.
                hint = (
                    f"{store.path} cannot be read: permission denied; run as root or as the "
                    "service's user (e.g. sudo pulsed status)"
                )
            hints.append(f"shop {name}: {hint}")
        interval = cfg.interval if cfg is not None else None
        due = (
            _schedule.due_at(state.last_success, state.next_due, now, interval).at
            if interval is not None
            else state.next_due
        )
        views.append(ShopView(name, cfg.domain if cfg else None, state, due, problem))
    doc = _status.document(views, now)
    if as_json:
        if hints:
            doc["errors"] = hints
        print(json.dumps(doc, ensure_ascii=False))
        return EX_OK
    sys.stdout.write(_status.text(doc, now))
    for hint in hints:
        print(_status.printable(hint))
    return EX_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"pulsed {__version__}")
        return EX_OK
    if args.command is None:
        build_parser().print_usage(sys.stderr)
        return 2
    _logging.setup("info")
    # Taken before anything can start a child, so no child inherits NOTIFY_SOCKET.
    notifier = Notifier.from_environ(os.environ) if args.command == "run" else None
    if args.command == "discover":
        return _discover.main(args.dirs)
    REDACT.register(os.environ.get(s.env, "") for s in _settings.SETTINGS if s.secret)
    try:
        flags = flags_of(args)
        if args.command == "run":
            return anyio.run(_run, flags, notifier or Notifier())
        if args.command == "once":
            return anyio.run(
                lambda: _once(flags, args.shop, force=args.force, dry_run=args.dry_run)
            )
        if args.command == "check":
            return anyio.run(_check, flags, args.shop)
        return _show_status(flags, args.shop, args.json)
    except ConfigError as exc:
        log.error(
            "configuration refused: %s",
            exc,
            extra={"event": "config.invalid", "setting": exc.setting},
        )
        return EX_CONFIG
    except LockHeldError as exc:
        log.error(
            "%s; refusing to run a second instance",
            exc,
            extra={"event": "state.locked", "holder": exc.holder},
        )
        return EX_TEMPFAIL
    except Exception:  # last resort: one redacted log line, never a raw traceback
        log.exception("pulsed failed unexpectedly", extra={"event": "daemon.crashed"})
        return EX_SOFTWARE
