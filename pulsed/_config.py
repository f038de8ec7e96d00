"""Configuration: loading every declared setting, where it came from, and whether it can work.

Precedence, highest first: command-line flag → environment variable → systemd
credential (secrets only) → TOML config file → default. The settings themselves
are declared in :mod:`pulsed._settings`; this module finds each one's raw value,
checks it with its declared validator, derives the defaults that depend on
something else (the composer.json under ``shop.root``, the domain in
``config.php``, ``$STATE_DIRECTORY``) and builds the :class:`Config`. :func:`load`
takes all of its inputs as arguments (flags, an environment mapping, the default
config path) so it can be tested without touching the process; a setting that
cannot work is a :class:`ConfigError` naming it, which the command line turns into
one line and exit 78. Secrets are held in :class:`Secret`, whose ``str`` and
``repr`` never show the value.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulsed import _settings, _shop
from pulsed._errors import CollectError, ConfigError, FileError
from pulsed._files import read_regular
from pulsed._settings import (
    BY_KEY,
    DEFAULT_STATE_DIR,
    MAX_INTERVAL,
    MODULE_COMPOSER,
    SECRETS,
    SECTIONS,
    SETTINGS,
    Secret,
    Setting,
)

__all__ = ["MAX_INTERVAL", "SECRETS", "SETTINGS", "Config", "Secret", "Setting", "load"]

DEFAULT_CONFIG_PATH = Path("/etc/pulsed/pulsed.toml")
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class Config:
    api_host: str
    heartbeat_secret: Secret
    timeout: float
    api_key: Secret | None
    bot_token: Secret | None
    telegram_api_base: str
    shop_root: Path | None
    composer_json: Path | None
    domain: str
    php_binary: str
    state_dir: Path
    interval: float
    log_level: str
    config_file: Path | None
    sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # Optional, so a Config built by hand (tests, other callers) needs neither.
    status_file: Path | None = None
    metrics_file: Path | None = None

    @property
    def heartbeat_url(self) -> str:
        return self.api_host.rstrip("/") + "/heartbeat"

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the log redactor."""
        found = (getattr(self, s.field) for s in SETTINGS if s.secret)
        return tuple(s.reveal() for s in found if s is not None)


# --- reading the sources ----------------------------------------------------


def config_path(flags: Mapping[str, str], environ: Mapping[str, str], default: Path) -> Path | None:
    """``--config``, else ``$PULSED_CONFIG``, else ``default`` when it exists."""
    if flags.get("config"):
        return Path(flags["config"])
    if environ.get("PULSED_CONFIG"):
        return Path(environ["PULSED_CONFIG"])
    return default if default.exists() else None


def check_trusted(path: Path, info: os.stat_result, euid: int | None = None) -> None:
    """Refuse a file (or folder) that anyone but root and pulsed's own user could change.

    As sshd's StrictModes: a config file steers what pulsed runs (``php_binary``)
    and where the bot token goes (``telegram.api_base``), so one that another user
    can write, or that sits in a folder another user can write, is not obeyed.
    """
    uid = os.geteuid() if euid is None else euid
    if info.st_uid not in (0, uid):
        raise ConfigError(
            "config", f"{path} is owned by uid {info.st_uid}, not by root or pulsed's user"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError("config", f"{path} is writable by others (mode {mode:04o}; chmod go-w)")


def read_config_file(path: Path) -> tuple[dict[str, Any], list[str], bool]:
    """Flattened ``section.key`` values, warnings, and whether others may read the file."""
    try:
        got = read_regular(path, MAX_CONFIG_BYTES)
    except FileError as exc:
        raise ConfigError("config", f"{exc}; cannot be read") from exc
    check_trusted(path, got.info)
    folder = path.absolute().parent
    check_trusted(folder, folder.stat())
    if got.cut:
        raise ConfigError("config", f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        # "utf-8-sig": a BOM, as some editors save one, is not TOML's business.
        raw = tomllib.loads(got.data.decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"{path}: not UTF-8 ({exc.reason})") from exc
    mode = got.info.st_mode
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for section, table in raw.items():
        if not isinstance(table, dict):
            if section in SECTIONS:
                raise ConfigError(section, f"{path}: [{section}] must be a table")
            unknown.append(section)
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            if name in BY_KEY:
                values[name] = value
            else:
                unknown.append(name)
    warnings = (
        [f"{path}: unknown settings ignored: {', '.join(sorted(unknown))}"] if unknown else []
    )
    return values, warnings, bool(mode & (stat.S_IROTH | stat.S_IWOTH))


def read_credential(environ: Mapping[str, str], name: str) -> str | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    try:
        text = read_regular(path, MAX_CONFIG_BYTES).data.decode("utf-8")
    except FileError as exc:
        if exc.kind == "missing":
            return None
        raise ConfigError(name, f"credential {exc}; cannot be read") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"credential {path} cannot be read (not UTF-8)") from exc
    # `echo secret > file` adds one newline; it is never part of the secret. An empty
    # credential is how the units stand in for a file that is not there
    # (systemd refuses to start on a missing one), so it means "not set".
    return text.removesuffix("\n").removesuffix("\r") or None


def pick(
    setting: Setting,
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    file_values: Mapping[str, Any],
) -> tuple[Any, str]:
    """The raw value of one setting and where it came from; ``(None, "default")`` if unset."""
    if setting.flag and flags.get(setting.flag) is not None:
        return flags[setting.flag], "flag"
    if environ.get(setting.env):
        return environ[setting.env], "env"
    if setting.credential:
        value = read_credential(environ, setting.credential)
        if value is not None:
            return value, "credential"
    if setting.key in file_values:
        return file_values[setting.key], "file"
    return None, "default"


def resolve_domain(override: Path | str | None, root: Path | None) -> str:
    if override is not None:
        try:
            return _shop.normalize_domain(str(override))
        except CollectError as exc:
            raise ConfigError("shop.domain", str(exc)) from exc
    if root is None:
        raise ConfigError("shop.domain", "not set, and no shop.root to read config.php from")
    try:
        return _shop.domain(_shop.read(root / "config.php"))
    except CollectError as exc:
        raise ConfigError("shop.domain", f"not set, and {exc}") from exc


def state_dir_of(raw: Any, environ: Mapping[str, str]) -> Path:
    if raw is not None:
        return _settings.path("daemon.state_dir", raw)
    if environ.get("STATE_DIRECTORY"):
        # systemd passes a colon-separated list when a unit names several.
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    return DEFAULT_STATE_DIR


# --- the whole configuration ------------------------------------------------


def _missing(setting: Setting, environ: Mapping[str, str]) -> ConfigError:
    reason = f"is required ({setting.sources_hint()}){setting.missing_note}"
    if setting.credential:
        directory = environ.get("CREDENTIALS_DIRECTORY")
        # By hand, outside the service, a credential is simply not there: say where
        # it is looked for, and how to point a check at the credential files.
        reason += (
            f"; no credential {setting.credential} in $CREDENTIALS_DIRECTORY ({directory})"
            if directory
            else "; credentials are read from $CREDENTIALS_DIRECTORY, which systemd sets "
            "only for the service (by hand: sudo CREDENTIALS_DIRECTORY=/etc/pulsed/credentials "
            "pulsed check)"
        )
    return ConfigError(setting.key, reason)


Derive = Callable[[Any, Mapping[str, Any], Mapping[str, str]], Any]

# Defaults that depend on another setting, the environment or a shop file (their
# declarations carry ``default_doc``), in the order the settings are declared.
_DERIVED: dict[str, Derive] = {
    "shop.composer_json": lambda value, done, _env: (
        value
        if value is not None or done["shop.root"] is None
        else done["shop.root"] / MODULE_COMPOSER
    ),
    "shop.domain": lambda value, done, _env: resolve_domain(value, done["shop.root"]),
    "daemon.state_dir": lambda value, _done, env: value or state_dir_of(None, env),
}


def load(
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    default_path: Path = DEFAULT_CONFIG_PATH,
) -> Config:
    """Resolve and validate every setting, or raise :class:`ConfigError`."""
    path = config_path(flags, environ, default_path)
    file_values: dict[str, Any] = {}
    warnings: list[str] = []
    shared = False
    if path is not None:
        file_values, warnings, shared = read_config_file(path)
    raws: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        raws[setting.key], sources[setting.key] = pick(setting, flags, environ, file_values)
    in_file = [key for key in SECRETS if key in file_values]
    if shared and in_file:
        warnings.append(
            f"{path}: holds a secret but others may read it (chmod 600, or use a credential)"
        )
    for key in in_file:
        if sources[key] != "file":
            warnings.append(
                f"{path}: its {key} is shadowed by the {sources[key]} value; "
                "remove it from the file so nobody relies on it"
            )
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = raws[setting.key]
        if raw is None and setting.required:
            raise _missing(setting, environ)
        value = setting.default if raw is None else setting.parse(setting.key, raw)
        derive = _DERIVED.get(setting.key)
        values[setting.key] = value if derive is None else derive(value, values, environ)
    return Config(
        **{s.field: values[s.key] for s in SETTINGS},
        config_file=path,
        sources=sources,
        warnings=tuple(warnings),
    )


def load_state_dir(
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    default_path: Path = DEFAULT_CONFIG_PATH,
) -> Path:
    """Only the state folder, for ``status``: the rest of the configuration may be broken."""
    file_values: dict[str, Any] = {}
    path = config_path(flags, environ, default_path)
    if path is not None:
        try:
            file_values, _, _ = read_config_file(path)
        except ConfigError:
            file_values = {}
    raw, _ = pick(BY_KEY["daemon.state_dir"], flags, environ, file_values)
    return state_dir_of(raw, environ)
