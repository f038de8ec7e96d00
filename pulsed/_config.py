"""Configuration: every setting, where it came from, and whether it can work.

Precedence, highest first: command-line flag → environment variable → systemd
credential (secrets only) → TOML config file → default. :func:`load` takes all of
its inputs as arguments (flags, an environment mapping, the default config path)
so it can be tested without touching the process; a setting that cannot work is
a :class:`ConfigError` naming it, which the command line turns into one line and
exit 78. Secrets are held in :class:`Secret`, whose ``str`` and ``repr`` never
show the value.
"""

from __future__ import annotations

import ipaddress
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pulsed import _shop
from pulsed._errors import CollectError, ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/pulsed/pulsed.toml")
DEFAULT_STATE_DIR = Path("/var/lib/pulsed")
MODULE_COMPOSER = Path("system/library/oc_telegram_shop/composer.json")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_CONFIG_BYTES = 1 << 20
# Ten years. A next heartbeat much further away has no calendar date to be written as
# (state.json, logs): such an interval is a mistake, not a schedule.
MAX_INTERVAL = 10 * 365 * 86400.0


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    env: str
    flag: str | None = None
    credential: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("pulse.api_host", "PULSE_API_HOST", "api-host"),
    Setting("pulse.heartbeat_secret", "PULSE_HEARTBEAT_SECRET", None, "pulse_heartbeat_secret"),
    Setting("pulse.timeout", "PULSE_TIMEOUT", "timeout"),
    Setting("pulse.api_key", "PULSE_API_KEY"),
    Setting("telegram.bot_token", "TELEGRAM_BOT_TOKEN", None, "telegram_bot_token"),
    Setting("telegram.api_base", "TELEGRAM_API_BASE", "telegram-api-base"),
    Setting("shop.root", "OPENCART_ROOT", "shop-root"),
    Setting("shop.composer_json", "PULSED_COMPOSER_JSON", "composer-json"),
    Setting("shop.domain", "PULSED_DOMAIN", "domain"),
    Setting("shop.php_binary", "PULSED_PHP", "php"),
    Setting("daemon.state_dir", "PULSED_STATE_DIR", "state-dir"),
    Setting("daemon.interval", "PULSED_INTERVAL", "interval"),
    Setting("daemon.log_level", "PULSED_LOG_LEVEL", "log-level"),
)
BY_NAME = {s.name: s for s in SETTINGS}
SECRETS = ("pulse.heartbeat_secret", "pulse.api_key", "telegram.bot_token")
# Flags that name a setting, as the command line spells them (without "--").
FLAG_SETTINGS = {s.flag: s.name for s in SETTINGS if s.flag}


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


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

    @property
    def heartbeat_url(self) -> str:
        return self.api_host.rstrip("/") + "/heartbeat"

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the log redactor."""
        found = (self.heartbeat_secret, self.api_key, self.bot_token)
        return tuple(s.reveal() for s in found if s is not None)


# --- reading the sources ----------------------------------------------------


def config_path(flags: Mapping[str, str], environ: Mapping[str, str], default: Path) -> Path | None:
    """``--config``, else ``$PULSED_CONFIG``, else ``default`` when it exists."""
    if flags.get("config"):
        return Path(flags["config"])
    if environ.get("PULSED_CONFIG"):
        return Path(environ["PULSED_CONFIG"])
    return default if default.exists() else None


def read_config_file(path: Path) -> tuple[dict[str, Any], list[str], bool]:
    """Flattened ``section.key`` values, warnings, and whether others may read the file."""
    try:
        # O_NONBLOCK: a FIFO put where the file should be is refused, never waited on.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise ConfigError("config", f"{path}: not a regular file")
            raw = tomllib.loads(fh.read(MAX_CONFIG_BYTES).decode("utf-8"))
    except OSError as exc:
        raise ConfigError("config", f"{path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"{path}: not UTF-8 ({exc.reason})") from exc
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for section, table in raw.items():
        if not isinstance(table, dict):
            if section in {s.name.split(".")[0] for s in SETTINGS}:
                raise ConfigError(section, f"{path}: [{section}] must be a table")
            unknown.append(section)
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            if name in BY_NAME:
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(name, f"credential {path} cannot be read ({reason})") from exc
    # `echo secret > file` adds one newline; it is never part of the secret. An empty
    # credential is how the units stand in for a file that is not there
    # (systemd refuses to start on a missing one), so it means "not set".
    return text.removesuffix("\n").removesuffix("\r") or None


def pick(
    name: str,
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    file_values: Mapping[str, Any],
) -> tuple[Any, str]:
    """The raw value of one setting and where it came from; ``(None, "default")`` if unset."""
    setting = BY_NAME[name]
    if setting.flag and flags.get(setting.flag) is not None:
        return flags[setting.flag], "flag"
    if environ.get(setting.env):
        return environ[setting.env], "env"
    if setting.credential:
        value = read_credential(environ, setting.credential)
        if value is not None:
            return value, "credential"
    if name in file_values:
        return file_values[name], "file"
    return None, "default"


# --- validating one value ---------------------------------------------------


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, not {type(value).__name__}")
    return value


def _number(name: str, value: Any, minimum: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(name, f"must be a number of seconds, not {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(name, f"must be a number of seconds, not {value!r:.40}") from None
    too_small = number <= minimum if strict else number < minimum
    if not math.isfinite(number) or too_small:
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(name, f"must be {bound} seconds, not {value!r:.40}")
    return number


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url(name: str, value: Any) -> str:
    url = _text(name, value).strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ConfigError(name, f"{url!r:.80} is not a URL ({exc})") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(name, f"must be an https:// URL, not {url!r:.80}")
    if parts.username or parts.password:
        raise ConfigError(name, "must not carry a user or password")
    if parts.query or parts.fragment:
        raise ConfigError(name, "must not carry a query or fragment")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(name, f"must use https:// ({host} is not a loopback host)")
    return url.rstrip("/")


def _secret(name: str, value: Any) -> Secret:
    text = _text(name, value)
    if not text.strip():
        raise ConfigError(name, "is empty")
    if text != text.strip():
        # Stripping silently would sign with another key than the receiver's.
        raise ConfigError(name, "has leading or trailing whitespace")
    return Secret(text)


def _bot_token(value: Any) -> Secret:
    token = _secret("telegram.bot_token", value)
    left, sep, right = token.reveal().partition(":")
    if not sep or not left.isdigit() or not right or any(c.isspace() for c in right):
        raise ConfigError("telegram.bot_token", "is malformed (expected <bot id>:<key>)")
    return token


def _path(name: str, value: Any) -> Path:
    text = _text(name, value)
    if not text.strip():
        raise ConfigError(name, "is empty")
    return Path(text)


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
        return _path("daemon.state_dir", raw)
    if environ.get("STATE_DIRECTORY"):
        # systemd passes a colon-separated list when a unit names several.
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    return DEFAULT_STATE_DIR


# --- the whole configuration ------------------------------------------------


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
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        raw[setting.name], sources[setting.name] = pick(setting.name, flags, environ, file_values)
    if shared and any(sources[name] == "file" for name in SECRETS):
        warnings.append(
            f"{path}: holds a secret but others may read it (chmod 600, or use a credential)"
        )

    if raw["pulse.api_host"] is None:
        raise ConfigError("pulse.api_host", "is required (PULSE_API_HOST or [pulse] api_host)")
    api_host = _base_url("pulse.api_host", raw["pulse.api_host"])
    if raw["pulse.heartbeat_secret"] is None:
        raise ConfigError(
            "pulse.heartbeat_secret",
            "is required (credential pulse_heartbeat_secret, PULSE_HEARTBEAT_SECRET "
            "or [pulse] heartbeat_secret); pulse.api_key is not a substitute",
        )
    secret = _secret("pulse.heartbeat_secret", raw["pulse.heartbeat_secret"])
    timeout = 5.0
    if raw["pulse.timeout"] is not None:
        timeout = _number("pulse.timeout", raw["pulse.timeout"], 0.0, strict=True)
    api_key = (
        None if raw["pulse.api_key"] is None else _secret("pulse.api_key", raw["pulse.api_key"])
    )
    token = None if raw["telegram.bot_token"] is None else _bot_token(raw["telegram.bot_token"])
    tg_base = _base_url("telegram.api_base", raw["telegram.api_base"] or "https://api.telegram.org")
    root = None if raw["shop.root"] is None else _path("shop.root", raw["shop.root"])
    composer = None
    if raw["shop.composer_json"] is not None:
        composer = _path("shop.composer_json", raw["shop.composer_json"])
    elif root is not None:
        composer = root / MODULE_COMPOSER
    override = None if raw["shop.domain"] is None else _text("shop.domain", raw["shop.domain"])
    domain = resolve_domain(override, root)
    php = (
        "php"
        if raw["shop.php_binary"] is None
        else _text("shop.php_binary", raw["shop.php_binary"])
    )
    if not php.strip():
        raise ConfigError("shop.php_binary", "is empty")
    interval = 3600.0
    if raw["daemon.interval"] is not None:
        interval = _number("daemon.interval", raw["daemon.interval"], 1.0, strict=False)
        if interval > MAX_INTERVAL:
            raise ConfigError(
                "daemon.interval", f"must be at most {MAX_INTERVAL:.0f} seconds (10 years)"
            )
    level = "info"
    if raw["daemon.log_level"] is not None:
        level = _text("daemon.log_level", raw["daemon.log_level"]).strip().lower()
        if level not in LOG_LEVELS:
            raise ConfigError("daemon.log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    return Config(
        api_host=api_host,
        heartbeat_secret=secret,
        timeout=timeout,
        api_key=api_key,
        bot_token=token,
        telegram_api_base=tg_base,
        shop_root=root,
        composer_json=composer,
        domain=domain,
        php_binary=php,
        state_dir=state_dir_of(raw["daemon.state_dir"], environ),
        interval=interval,
        log_level=level,
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
    raw, _ = pick("daemon.state_dir", flags, environ, file_values)
    return state_dir_of(raw, environ)
