"""The ``pulsed`` command: parse the arguments, dispatch, return an exit code.

The commands themselves are :mod:`pulsed._daemon` (``run``), :mod:`pulsed._commands`
(``once``, ``check``, ``status``) and :mod:`pulsed._discover`. ``main()`` never raises
for an expected failure: a configuration that cannot work is one ``config.invalid``
line and exit 78, a held state folder, or one ``once`` cannot write, is exit 75, and
everything else the daemon meets is a warning inside the loop.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import anyio

from pulsed import (
    _adopt,
    _commands,
    _daemon,
    _discover,
    _logging,
    _provision,
    _settings,
    _wiring,
)
from pulsed._config import SHOP_NAME
from pulsed._errors import (
    EX_CONFIG,
    EX_OK,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    ConfigError,
    LockHeldError,
    StateUnwritableError,
)
from pulsed._events import event
from pulsed._notify import Notifier
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
    parser = _Parser(
        prog="pulsed", description="Send the AcmeShop Pulse heartbeat of each shop on this host."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    _add_setting_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _heartbeat_commands(sub)
    _adopt_command(sub)
    _provisioning_commands(sub)
    return parser


def _heartbeat_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """run, once, status and check: each takes every setting as a flag."""
    run = sub.add_parser("run", help="the daemon, in the foreground")
    once = sub.add_parser("once", help="one heartbeat now, if due")
    once.add_argument("--force", action="store_true", help="send even if not due")
    once.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send and write nothing"
    )
    status = sub.add_parser("status", help="what the state says")
    status.add_argument("--json", action="store_true", help="as one JSON object")
    status.add_argument(
        "--failing", action="store_true", help="only the shops that are not ok (failing, disabled)"
    )
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


def _adopt_command(sub: argparse._SubParsersAction[_Parser]) -> None:
    adopt = sub.add_parser(
        "adopt", help="move a shop's state from another folder, checking it is that shop's"
    )
    adopt.add_argument("source", metavar="FROM", help="the folder holding the state.json to move")
    adopt.add_argument(
        "--shop", action="append", default=[], metavar="NAME", help="the shop it is given to"
    )
    adopt.add_argument(
        "--unrecorded-domain",
        action="store_true",
        help="take a state that records no domain (written before states did) as this shop's",
    )
    _add_setting_flags(adopt)


def _provisioning_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    """discover, add-shop and add-secrets: what writes the configuration and credentials."""
    discover = sub.add_parser(
        "discover", help="find OpenCart/ocStore shops with the module; print [shops.*] tables"
    )
    discover.add_argument("dirs", nargs="+", metavar="DIR", help="where to look")
    discover.add_argument(
        "--write",
        metavar="SHOPS_D",
        help="write a <name>.toml per shop found into this folder (e.g. /etc/pulsed/shops.d),"
        " never over a file; print what to run next",
    )
    add_shop = sub.add_parser(
        "add-shop", help="write a shop's shops.d file and, given one, its own secret"
    )
    add_shop.add_argument("name", metavar="NAME", help="the shop's name (1-32 of A-Z a-z 0-9 _ -)")
    add_shop.add_argument("--root", required=True, metavar="PATH", help="the shop's folder")
    add_shop.add_argument("--domain", metavar="DOMAIN", help="if config.php does not say it")
    given = add_shop.add_mutually_exclusive_group()
    # Not dest="secret_…": that prefix marks the refused flags that would take a secret.
    given.add_argument(
        "--secret-file",
        dest="own_secret_file",
        metavar="FILE",
        help="the shop's own heartbeat secret, the file's first line",
    )
    given.add_argument(
        "--secret-stdin",
        dest="own_secret_stdin",
        action="store_true",
        help="the shop's own heartbeat secret, one line on stdin",
    )
    add_secrets = sub.add_parser(
        "add-secrets",
        help=f"write shops' own credentials from lines '{_provision.LINE_FORMAT}'",
    )
    add_secrets.add_argument(
        "file", nargs="?", metavar="FILE", help="the lines (default, or -: stdin)"
    )
    add_secrets.add_argument(
        "--bot-tokens",
        action="store_true",
        help="the lines hold Telegram bot tokens (telegram_bot_token.<shop>)",
    )
    add_secrets.add_argument(
        "--replace", action="store_true", help="replace a credential that holds another value"
    )
    for each in (add_shop, add_secrets):
        each.add_argument(
            "--credentials-dir",
            metavar="DIR",
            default=str(_provision.CREDENTIALS_DIR),
            help="where the credentials generator reads them (default %(default)s)",
        )
        # Only the configuration file: the shop's own keys are this command's.
        each.add_argument(
            "--config",
            metavar="PATH",
            default=argparse.SUPPRESS,
            help="TOML config file (default $PULSED_CONFIG or /etc/pulsed/pulsed.toml)",
        )


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


def shop_names(names: Sequence[str]) -> list[str]:
    """The ``--shop`` names, each checked before it is used: a name becomes a path in the
    state folder (``status --shop ../../x`` would read outside it) and is printed."""
    for name in names:
        if not SHOP_NAME.fullmatch(name):
            raise ConfigError(
                "--shop", f"{ascii(name)[:60]} is not a shop name (1-32 of A-Z a-z 0-9 _ -)"
            )
    return list(names)


def _add(args: argparse.Namespace, flags: dict[str, str]) -> int:
    """``add-shop`` and ``add-secrets``: what was written, then what to run next (systemd's
    steps as root, the user unit's otherwise)."""
    folder = Path(args.credentials_dir)
    if args.command == "add-shop":
        secret = _provision.read_secret(args.own_secret_file, stdin=args.own_secret_stdin)
        report = _provision.add_shop(
            flags, args.name, Path(args.root), domain=args.domain, secret=secret, folder=folder
        )
        changed, credential = True, secret is not None
    else:
        report = _provision.add_secrets(
            flags,
            _provision.read_lines(args.file),
            credential="telegram_bot_token" if args.bot_tokens else "pulse_heartbeat_secret",
            folder=folder,
            replace=args.replace,
        )
        changed = credential = any(not line.startswith("unchanged") for line in report)
    after = _provision.next_steps(changed=changed, credential=credential, as_root=os.geteuid() == 0)
    sys.stdout.write("".join(f"{line}\n" for line in report) + after)
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
        return _discover.main(args.dirs, args.write)
    _wiring.protect_environment(os.environ)
    try:
        flags = flags_of(args)
        if args.command in ("add-shop", "add-secrets"):
            return _add(args, flags)
        if args.command != "run":
            args.shop = shop_names(args.shop)
        if args.command == "run":
            return anyio.run(_daemon.run, flags, notifier or Notifier())
        if args.command == "once":
            return anyio.run(
                lambda: _commands.once(flags, args.shop, force=args.force, dry_run=args.dry_run)
            )
        if args.command == "adopt":
            return _adopt.adopt(
                flags, args.shop, Path(args.source), unrecorded=args.unrecorded_domain
            )
        if args.command == "check":
            return anyio.run(_commands.check, flags, args.shop)
        return _commands.status(flags, args.shop, args.json, failing=args.failing)
    except ConfigError as exc:
        log.error(
            "configuration refused: %s",
            exc,
            extra=event("config.invalid", setting=exc.setting),
        )
        return EX_CONFIG
    except StateUnwritableError as exc:
        _commands.withheld(exc)
        return EX_TEMPFAIL
    except LockHeldError as exc:
        log.error(
            "%s; refusing to run a second instance",
            exc,
            extra=event("state.locked", holder=exc.holder),
        )
        return EX_TEMPFAIL
    except Exception:  # last resort: one redacted log line, never a raw traceback
        log.exception("pulsed failed unexpectedly", extra=event("daemon.crashed"))
        return EX_SOFTWARE
