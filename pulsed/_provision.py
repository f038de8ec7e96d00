"""Writing what an operator adds: ``shops.d`` files and each shop's own credentials.

``pulsed add-shop`` writes one shop's file (and its secret), ``pulsed add-secrets``
many shops' secrets from lines ``<shop or domain> <secret>`` on stdin or in a file,
and ``pulsed discover --write`` the files of the shops it found, through
:func:`write_new_files`. A secret is never taken from the command line (another user
sees it in ``ps``) and never printed, not even a line of the input: errors name the
line by its number.

Nothing that exists is replaced (a secret only with ``--replace``), nothing is
written unless everything given can be (a typo on line 40 of 60 writes nothing),
and each file appears whole or not at all. Shop files are 0644 (the service's
dynamic user reads them), credentials 0600 in the folder the credentials generator
reads (``systemd/pulsed-credentials-generator``), which systemd copies into the
service only when it starts: hence the commands printed after.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pulsed import _config
from pulsed._config import SHOP_NAME, SHOPS_DIR, Config
from pulsed._errors import CollectError, ConfigError, FileError, PulsedError
from pulsed._files import open_trusted_folder, read_regular, write_at, write_new
from pulsed._hostname import normalize_domain
from pulsed._settings import BY_KEY, Secret
from pulsed._state import DEFAULT_SHOP

# Where the credentials generator looks (its PULSED_CREDENTIALS_DIR default).
CREDENTIALS_DIR = Path("/etc/pulsed/credentials")
# The per-shop credentials and the setting that checks each one's value.
CREDENTIALS = {
    "pulse_heartbeat_secret": BY_KEY["pulse.heartbeat_secret"],
    "telegram_bot_token": BY_KEY["telegram.bot_token"],
}
SHOP_FILE_MODE = 0o644  # read by the service's unprivileged user
SHOPS_DIR_MODE = 0o755
CREDENTIAL_MODE = 0o600  # root's only: systemd copies it into the service
CREDENTIALS_DIR_MODE = 0o700
LINE_FORMAT = "<shop or domain> <secret>"

# What systemd needs after a credential was added (the reload error says the same).
RESTART = (
    "next: systemd hands a new credential to the service only when it starts, after the\n"
    "generator has run again (a restart sends nothing early):\n"
    "  sudo systemctl daemon-reload\n"
    "  sudo systemctl restart pulsed      # the first time: sudo systemctl enable --now pulsed\n"
)
RELOAD = (
    "next: sudo systemctl reload pulsed   # the first time: sudo systemctl enable --now pulsed\n"
)
# Not root: the user unit reads its credentials folder as it is (CREDENTIALS_DIRECTORY,
# docs/without-root.md), so a reload is enough, and a cron line's next run reads it.
AS_USER = "next: systemctl --user reload pulsed   # under cron: nothing, the next run reads it\n"
UNCHANGED = "nothing changed: nothing to restart\n"


def next_steps(*, changed: bool, credential: bool, as_root: bool) -> str:
    """What to run after ``add-shop`` or ``add-secrets``: nothing when nothing changed; as
    root, systemd's steps (a new ``credential`` only reaches the service at a start after
    ``daemon-reload``); as a user, the user unit's reload."""
    if not changed:
        return UNCHANGED
    if not as_root:
        return AS_USER
    return RESTART if credential else RELOAD


# --- what is configured --------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """What the configuration already has: its shop names, each shop by its resolved
    root (a disabled one too, when its configuration names one) and each working shop
    by its domain: a shop found again is not listed again."""

    names: frozenset[str] = frozenset()
    roots: Mapping[Path, str] = field(default_factory=dict)
    domains: Mapping[str, str] = field(default_factory=dict)
    listed: bool = False  # shops come from [shops.*] / shops.d, not the one-shop [shop]
    # The one shop of a configuration that lists none: listing a shop would drop it.
    single: Config | None = None


def known(flags: Mapping[str, str], environ: Mapping[str, str]) -> Known:
    """The configured shops. When a shared setting cannot work (no api_host yet), only
    the names the files give; when nothing can be read, nothing."""
    try:
        setup = _config.load_setup(flags, environ, secrets=False)
    except (PulsedError, OSError):
        return Known(frozenset(_names_in_files(flags, environ)))
    return Known(
        frozenset(c.name for c in setup.shops) | {d.name for d in setup.disabled},
        {c.shop_root.resolve(): c.name for c in setup.shops if c.shop_root is not None}
        | {d.root.resolve(): d.name for d in setup.disabled if d.root is not None},
        {c.domain: c.name for c in setup.shops},
        setup.listed,
        None if setup.listed or not setup.shops else setup.shops[0],
    )


# Why a one-shop host's shop becomes shops.d/default.toml when shops are first listed.
CARRIED = (
    "the one shop configured before shops were listed: named default it keeps its state "
    "and schedule; remove root (and domain) from [shop] in the configuration file"
)


def carried_file(root: Path, single: Config) -> bytes:
    """The ``shops.d/default.toml`` of a one-shop configuration's shop, whose root is
    ``root``: once any shop is listed, ``[shop]``'s root is ignored, and under the name
    ``default`` the shop keeps its state (``<state_dir>/state.json``), so it sends
    nothing early."""
    explicit = single.sources["shop.domain"] != "default"
    return shop_file(root, single.domain if explicit else None, CARRIED)


def _names_in_files(flags: Mapping[str, str], environ: Mapping[str, str]) -> set[str]:
    try:
        path = _config.config_path(flags, environ, _config.DEFAULT_CONFIG_PATH)
        if path is None:
            return set()
        names = set(_config.read_config_file(path).shops)
        names |= shop_file_names(path.absolute().parent / SHOPS_DIR)
    except (PulsedError, OSError):
        return set()
    return names


def shop_file_names(folder: Path) -> set[str]:
    """The shop names of a ``shops.d`` folder's files (none when it is not there)."""
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.iterdir() if _config.is_shop_file(p)}


def shops_dir(flags: Mapping[str, str], environ: Mapping[str, str]) -> Path:
    """The ``shops.d`` beside the configuration file in force; that file must exist,
    since a ``shops.d`` is read only beside one."""
    path = _config.config_path(flags, environ, _config.DEFAULT_CONFIG_PATH)
    if path is None or not path.is_file():
        where = path or _config.DEFAULT_CONFIG_PATH
        raise ConfigError(
            "config",
            f"{where} is not there; shops.d/ is read only beside a configuration file "
            f"(first: sudo cp {where}.example {where}, and set pulse.api_host)",
        )
    return path.absolute().parent / SHOPS_DIR


# --- reading secrets -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    line: int
    shop: str
    value: Secret


@dataclass(frozen=True)
class Shops:
    """The configured shops a line may name: by name, or by domain."""

    names: frozenset[str]
    domains: Mapping[str, str]

    def find(self, word: str) -> str | None:
        if word in self.names:
            return word
        try:
            return self.domains.get(normalize_domain(word))
        except CollectError:
            return None


def parse_lines(
    text: str, shops: Shops, check: Callable[[str, Any], Secret], credential: str
) -> tuple[list[Entry], list[str]]:
    """The entries of lines ``<shop or domain> <secret>``, and each line's problem.

    Blank lines and ``#`` comments are skipped. A problem names its line, and of its
    words only a configured shop's name: a line written the wrong way round starts
    with the secret.
    """
    entries: list[Entry] = []
    problems: list[str] = []
    first: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        if len(words) < 2:
            problems.append(f"line {number}: expected {LINE_FORMAT}")
            continue
        shop = shops.find(words[0])
        if shop is None:
            problems.append(
                f"line {number}: the first word is neither a configured shop nor its domain"
            )
            continue
        if shop in first:
            problems.append(f"line {number}: shop {shop} was given on line {first[shop]} already")
            continue
        first[shop] = number
        try:
            value = check(f"{credential}.{shop}", words[1])
        except ConfigError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        entries.append(Entry(number, shop, value))
    if not entries and not problems:
        problems.append(f"no line of {LINE_FORMAT} was given")
    return entries, problems


def configured_shops(flags: Mapping[str, str], environ: Mapping[str, str]) -> Shops:
    """Each configured shop by its name, and each that can work by its domain."""
    setup = _config.load_setup(flags, environ, secrets=False)
    names = {c.name for c in setup.shops} | {d.name for d in setup.disabled}
    return Shops(
        frozenset(n for n in names if SHOP_NAME.fullmatch(n)),
        {c.domain: c.name for c in setup.shops},
    )


# --- writing credentials --------------------------------------------------------------

Action = Literal["write", "replace", "unchanged"]


def plan(
    entries: Sequence[Entry],
    existing: Mapping[str, bytes | FileError | None],
    credential: str,
    *,
    replace: bool,
) -> tuple[list[tuple[Entry, Action]], list[str]]:
    """What to do with each entry given what its file holds now (``None``: no file;
    a :class:`FileError`: something that is not a regular file, never touched)."""
    actions: list[tuple[Entry, Action]] = []
    problems: list[str] = []
    for entry in entries:
        name = f"{credential}.{entry.shop}"
        now = existing.get(name)
        if now is None:
            actions.append((entry, "write"))
        elif isinstance(now, FileError):
            problems.append(f"line {entry.line}: {now}; not touched")
        elif now == _credential_bytes(entry.value):
            actions.append((entry, "unchanged"))
        elif replace:
            actions.append((entry, "replace"))
        else:
            problems.append(
                f"line {entry.line}: {name} exists with another value; kept (--replace replaces it)"
            )
    return actions, problems


def _credential_bytes(value: Secret) -> bytes:
    # As `printf %s`: no newline (read_credential would drop one, a reader may not).
    return value.reveal().encode("utf-8")


def open_folder(folder: Path, mode: int, setting: str) -> int:
    """A descriptor of ``folder``, made with ``mode`` if it is not there (its parent must
    be), refused when it is a link or others may change it."""
    try:
        folder.mkdir(mode)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(setting, f"{folder}: cannot be created ({exc.strerror})") from exc
    else:
        folder.chmod(mode)  # whatever the umask made of it
    return open_trusted_folder(folder, setting)


def _existing(folder: Path, name: str) -> bytes | FileError | None:
    try:
        return read_regular(folder / name, _config.MAX_CONFIG_BYTES, follow=False).data
    except FileError as exc:
        return None if exc.kind == "missing" else exc


def add_secrets(
    flags: Mapping[str, str],
    text: str,
    *,
    credential: str = "pulse_heartbeat_secret",
    folder: Path = CREDENTIALS_DIR,
    replace: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> list[str]:
    """Write each line's credential ``<credential>.<shop>`` into ``folder``; the report.

    :class:`ConfigError` listing every problem, and nothing written, when any line
    cannot be taken.
    """
    shops = configured_shops(flags, environ)
    entries, problems = parse_lines(text, shops, CREDENTIALS[credential].parse, credential)
    names = [f"{credential}.{e.shop}" for e in entries]
    existing = {name: _existing(folder, name) for name in names}
    actions, more = plan(entries, existing, credential, replace=replace)
    if problems or more:
        raise ConfigError("secrets", _refused(sorted([*problems, *more], key=_line_number)))
    dir_fd = open_folder(folder, CREDENTIALS_DIR_MODE, "secrets")
    try:
        report = []
        for entry, action in actions:
            name = f"{credential}.{entry.shop}"
            data = _credential_bytes(entry.value)
            if action == "replace":
                write_at(dir_fd, folder, name, data, CREDENTIAL_MODE)
            elif action == "write" and not write_new(dir_fd, folder, name, data, CREDENTIAL_MODE):
                report.append(f"kept     {folder / name}: it appeared meanwhile; not replaced")
                continue
            shown = {"write": "wrote", "replace": "replaced", "unchanged": "unchanged"}[action]
            report.append(f"{shown:8} {folder / name}")
    finally:
        os.close(dir_fd)
    return report


def _line_number(problem: str) -> int:
    word = problem.partition(":")[0].removeprefix("line ")
    return int(word) if word.isdigit() else 0


def _refused(problems: Sequence[str]) -> str:
    return f"nothing written; {len(problems)} refused: " + "; ".join(problems)


# --- writing shop files ---------------------------------------------------------------


def write_new_files(
    folder: Path, files: Sequence[tuple[str, bytes]], mode: int, setting: str
) -> list[tuple[str, bool]]:
    """Create each ``(name, data)`` in ``folder`` (made if missing), never over a file
    that exists; each name with whether it was written."""
    dir_fd = open_folder(folder, SHOPS_DIR_MODE, setting)
    try:
        return [(name, write_new(dir_fd, folder, name, data, mode)) for name, data in files]
    finally:
        os.close(dir_fd)


def toml_string(value: str) -> str:
    """``value`` as one TOML basic string, whatever characters it holds."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else _toml_escape(c) for c in escaped) + '"'


def _toml_escape(char: str) -> str:
    # \u takes exactly four hex digits: a character past U+FFFF needs \U and eight.
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shop_file(root: Path, domain: str | None = None, note: str = "") -> bytes:
    """A ``shops.d`` file: the shop's keys under ``[shop]``, ``note`` as a comment first."""
    lines = [f"# {note}\n"] if note else []
    lines += ["[shop]\n", f"root = {toml_string(str(root))}\n"]
    if domain is not None:
        lines.append(f"domain = {toml_string(domain)}\n")
    return "".join(lines).encode("utf-8")


def add_shop(
    flags: Mapping[str, str],
    name: str,
    root: Path,
    *,
    domain: str | None = None,
    secret: str | None = None,
    folder: Path = CREDENTIALS_DIR,
    environ: Mapping[str, str] = os.environ,
) -> list[str]:
    """Write ``shops.d/<name>.toml`` and, given one, the shop's own heartbeat secret;
    the report. :class:`ConfigError`, and nothing written, when either cannot be."""
    if not SHOP_NAME.fullmatch(name):
        raise ConfigError(
            "add-shop", f"{ascii(name)[:60]} is not a shop name (1-32 of A-Z a-z 0-9 _ -)"
        )
    shops = shops_dir(flags, environ)
    root = root.absolute()
    found = _config.resolve_domain(domain, root)  # refused here if the shop cannot work
    have = known(flags, environ)
    if have.single is not None and have.single.shop_root is None:
        # Listing any shop drops [shop]; without a root there is no shops.d file to
        # carry it into, and it would silently stop sending.
        raise ConfigError(
            "add-shop",
            "the one shop configured in [shop] has no root to list it by as "
            f"shops.d/{DEFAULT_SHOP}.toml; list it there first (its composer_json and "
            "domain under [shop]), then add this one; nothing written",
        )
    if name in have.names:
        raise ConfigError("add-shop", f"shop {name} is already configured; nothing written")
    if (other := have.roots.get(root.resolve())) is not None:
        raise ConfigError("add-shop", f"{root} is already shop {other}'s; nothing written")
    if (other := have.domains.get(found)) is not None:
        # pulsed disables every shop of a domain listed twice.
        raise ConfigError("add-shop", f"{found} is already shop {other}'s; nothing written")
    value = None
    if secret is not None:
        credential = f"pulse_heartbeat_secret.{name}"
        value = CREDENTIALS["pulse_heartbeat_secret"].parse(credential, secret)
    report = [] if value is None else add_own_secret(name, value, folder)
    files = [(f"{name}.toml", shop_file(root, domain))]
    if have.single is not None and have.single.shop_root is not None:  # None: refused above
        files.insert(0, (f"{DEFAULT_SHOP}.toml", carried_file(have.single.shop_root, have.single)))
    for file, written in write_new_files(shops, files, SHOP_FILE_MODE, "add-shop"):
        if not written:
            raise ConfigError("add-shop", f"{shops / file} exists; kept, nothing written over it")
        report.append(f"wrote    {shops / file}")
    if have.single is not None:
        report.append(f"note     {DEFAULT_SHOP}: {CARRIED}")
    return report


def add_own_secret(name: str, value: Secret, folder: Path) -> list[str]:
    credential = f"pulse_heartbeat_secret.{name}"
    dir_fd = open_folder(folder, CREDENTIALS_DIR_MODE, "add-shop")
    try:
        now = _existing(folder, credential)
        data = _credential_bytes(value)
        if now == data:
            return [f"unchanged {folder / credential}"]
        if now is not None or not write_new(dir_fd, folder, credential, data, CREDENTIAL_MODE):
            raise ConfigError(
                "add-shop",
                f"{folder / credential} exists with another value; kept, nothing written",
            )
    finally:
        os.close(dir_fd)
    return [f"wrote    {folder / credential}"]


def read_secret(path: str | None, *, stdin: bool) -> str | None:
    """The secret of ``--secret-file`` or ``--secret-stdin``: its first line."""
    if path is None and not stdin:
        return None
    try:
        if path is not None:
            data = read_regular(Path(path), _config.MAX_CONFIG_BYTES).data
        else:
            data = sys.stdin.buffer.readline(_config.MAX_CONFIG_BYTES)
        text = data.decode("utf-8")
    except FileError as exc:
        raise ConfigError("--secret-file", f"{exc}; cannot be read") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("--secret-file", "not UTF-8") from exc
    # One line: its newline (and a CR before it) is not part of the secret.
    return text.partition("\n")[0].removesuffix("\r")


def read_lines(path: str | None) -> str:
    """The lines of ``add-secrets``: the file named, else stdin (``-`` too)."""
    try:
        if path is not None and path != "-":
            got = read_regular(Path(path), _config.MAX_CONFIG_BYTES)
            if got.cut:
                raise ConfigError("secrets", f"{path}: larger than 1 MiB")
            data = got.data
        else:
            data = sys.stdin.buffer.read(_config.MAX_CONFIG_BYTES + 1)
            if len(data) > _config.MAX_CONFIG_BYTES:
                raise ConfigError("secrets", "stdin: larger than 1 MiB")
        return data.decode("utf-8")
    except FileError as exc:
        raise ConfigError("secrets", f"{exc}; cannot be read") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("secrets", "not UTF-8") from exc
