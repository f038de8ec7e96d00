"""How the commands are wired: a configuration put in force, the shops' cycles opened on
shared edges, the state folder locked, and the status files published.

This is the one place that configures the log redactor (:func:`protect`): every
secret the environment holds before a configuration loads, then every secret of
each configuration put in force. :class:`Shops` opens cycles that share one
identity round and one php version cache, each with its own shop files kept, and
knows which are open, so a round also takes the other open shops' stale tokens.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path

from pulsed import _collect, _config, _identity, _logging, _publish, _settings
from pulsed._config import SHOP_NAME, Config, Setup
from pulsed._cycle import Cycle
from pulsed._delivery import Sender
from pulsed._errors import ConfigError, LockHeldError, StateError
from pulsed._events import event
from pulsed._files import open_trusted_folder, remove_leftovers
from pulsed._redact import REDACT
from pulsed._state import (
    State,
    StateLock,
    StateStore,
    check_private,
    check_writable,
    shop_state_dir,
)
from pulsed._status import ShopView
from pulsed._version import __version__

log = logging.getLogger("pulsed")


def protect(secrets: Iterable[str]) -> None:
    """Keep these values out of every line pulsed writes from now on."""
    REDACT.register(secrets)


def protect_environment(environ: Mapping[str, str]) -> None:
    """The secrets the environment holds, before anything (a refused configuration
    too) can print one."""
    protect(environ.get(s.env, "") for s in _settings.SETTINGS if s.secret)


def configure(flags: Mapping[str, str], shops: Sequence[str] = ()) -> Setup:
    """The configuration, loaded and put in force (:func:`loaded`), with a shop that can work.

    :class:`ConfigError` when no shop can work (for the one-shop configuration,
    its own error).
    """
    setup = loaded(flags, shops)
    refuse_without_shops(setup)
    return setup


def loaded(flags: Mapping[str, str], shops: Sequence[str] = ()) -> Setup:
    """The configuration, loaded and put in force: its log level, its secrets, its
    warnings; each listed shop that cannot work is one ``shop.disabled`` error."""
    setup = _config.load_setup(flags, os.environ).select(shops)
    _logging.set_level(setup.log_level)
    protect(setup.secrets())
    for warning in setup.warnings:
        log.warning(warning, extra=event("config.warning"))
    if not setup.listed:
        return setup
    for off in setup.disabled:
        log.error(
            "shop %s cannot work and is skipped: %s",
            off.name,
            off.error,
            extra=event("shop.disabled", shop=off.name, setting=off.error.setting),
        )
    return setup


def refuse_without_shops(setup: Setup) -> None:
    """:class:`ConfigError` when no shop of ``setup`` can work."""
    if setup.shops:
        return
    if not setup.listed and setup.disabled:
        raise setup.disabled[0].error
    raise ConfigError("shops", f"no shop can work ({len(setup.disabled)} disabled)")


class Shops:
    """The open shops' cycles, opened on one identity round and one php version cache."""

    def __init__(self, *, writable: bool) -> None:
        self.writable = writable
        self.identities = _identity.Rounds(wanted=self.stale_tokens)
        self.collect = functools.partial(_collect.collect, php=_collect.PhpVersions())
        self.cycles: dict[str, Cycle] = {}

    def open(self, cfg: Config) -> Cycle:
        named = _logging.SHOP.set(cfg.name)  # a state moved aside while opening names its shop
        try:
            cycle = Cycle.open(
                cfg,
                writable=self.writable,
                environ=os.environ,
                identities=self.identities,
                # Its own shop files kept: they go when the shop does.
                collect=functools.partial(self.collect, files=_collect.ShopFiles()),
            )
        finally:
            _logging.SHOP.reset(named)
        self.cycles[cfg.name] = cycle
        return cycle

    def close(self, name: str) -> None:
        self.cycles.pop(name, None)

    def stale_tokens(self) -> list[str]:
        """Every open shop's bot token whose kept name is stale: one round takes them all."""
        return [t for c in self.cycles.values() if (t := c.stale_token())]


def disabled_views(setup: Setup) -> list[ShopView]:
    """The shops that cannot work, as every listing shows them: their problem, the
    setting, and the figures their state kept (read only; nothing is due).

    A name that is no shop name (it could name no folder safely) has no state to read,
    nor a place in the status file, whose names are shop names: the journal's
    ``shop.disabled`` line and ``check`` show it.
    """
    views = []
    for off in setup.disabled:
        if not SHOP_NAME.fullmatch(off.name):
            continue
        try:
            state = StateStore(shop_state_dir(setup.state_dir, off.name)).read() or State()
        except StateError:
            state = State()
        views.append(ShopView(off.name, None, state, None, "disabled", off.error.setting))
    return views


def publisher(setup: Setup) -> _publish.Publisher | None:
    """The status file and the metrics textfile of a running daemon, each shop's pieces
    kept between writes; ``None`` when neither is set (no shop's piece is ever rendered).

    Their paths are taken at start and kept across reloads, like the state folder:
    the unit made their folder for this process.
    """
    if setup.status_file is None and setup.metrics_file is None:
        return None
    return _publish.Publisher(
        status_file=setup.status_file, metrics_file=setup.metrics_file, version=__version__
    )


def publish(setup: Setup, views: Sequence[ShopView]) -> bool:
    """Write the status file and the metrics textfile once, from every shop's view."""
    return _publish.publish(
        views,
        time.time(),
        status_file=setup.status_file,
        metrics_file=setup.metrics_file,
        version=__version__,
    )


def _lock(directory: Path) -> StateLock | None:
    lock = StateLock(directory)
    try:
        lock.acquire()
    except StateError as exc:
        log.warning(
            "%s; running without the single-instance lock", exc, extra=event("state.unlocked")
        )
        return None
    return lock


def check_public_folders(setup: Setup) -> None:
    """Refuse (``ConfigError``, 78) a status or metrics file whose folder is a link, is
    another user's, or others may write, or that resolves into the state folder: pulsed
    may run as root, and such a folder would let a tenant choose where root writes."""
    for setting, public in zip(
        _config.PUBLIC_FILES, (setup.status_file, setup.metrics_file), strict=True
    ):
        if public is None:
            continue
        _config.check_outside_state(setting, public, setup.state_dir, real=True)
        if os.path.lexists(public.parent):  # a missing one is a warning at each write
            os.close(open_trusted_folder(public.parent, setting))


def publish_refused(setup: Setup) -> None:
    """Before ``run`` exits 78 because no shop can work: the status and metrics files
    show every shop disabled, with its problem and kept figures, so an admin page says
    why instead of showing the last run's figures (or nothing).

    Only by the state folder's holder, as at every other write: a pulsed that runs
    owns these files, and this one must not overwrite its view. A file that cannot be
    written is the usual ``status.unwritable`` warning; the refusal follows either way.
    """
    if setup.status_file is None and setup.metrics_file is None:
        return
    try:
        check_private(setup.state_dir)
        check_public_folders(setup)
    except ConfigError as exc:
        log.warning(
            "status cannot be written (%s)",
            exc,
            extra=event("status.unwritable", errors=[str(exc)]),
        )
        return
    lock = StateLock(setup.state_dir)
    try:
        lock.acquire()
    except LockHeldError:
        return  # another pulsed runs, and its files say what it does
    except StateError:
        pass  # as writable(): a folder that cannot be locked is no reason to say nothing
    try:
        make_status_folder(setup)
        publish(setup, disabled_views(setup))
    finally:
        lock.release()  # nothing to release when it was not taken


def make_status_folder(setup: Setup) -> None:
    """The default status file's folder under ``$XDG_RUNTIME_DIR``, when missing: a user
    unit's ``RuntimeDirectory=`` makes it, a ``once`` by hand finds none. Not a
    configured file's, whose folder is the operator's to make (a warning says so)."""
    if setup.status_folder is not None:
        with contextlib.suppress(OSError):  # then a warning at each write says why
            setup.status_folder.mkdir(mode=0o755)


@contextlib.asynccontextmanager
async def writable(setup: Setup, *, must_keep: bool = False) -> AsyncIterator[tuple[Shops, Sender]]:
    """Every shop's cycle with the state folder locked, and a sender; closed after.

    ``must_keep`` (``once``): a state folder this process cannot write is
    :class:`~pulsed._errors.StateUnwritableError` before anything is sent.
    """
    check_private(setup.state_dir)
    if must_keep:
        check_writable(setup.state_dir)
    make_status_folder(setup)
    check_public_folders(setup)
    lock = _lock(setup.state_dir)
    shops = Shops(writable=True)
    for cfg in setup.shops:
        shops.open(cfg)
    if lock is not None:
        # Only the lock's holder may call a temp file a killed writer's leftover.
        for cycle in shops.cycles.values():
            cycle.store.sweep()
        for public in (setup.status_file, setup.metrics_file):
            if public is not None:
                remove_leftovers(public)
    sender = Sender(setup.shops[0].heartbeat_url)
    try:
        yield shops, sender
    finally:
        await sender.aclose()
        if lock is not None:
            lock.release()
