"""Every setting of pulsed, declared once, and the validators of their values.

One :class:`Setting` per ``section.key`` says where the setting may come from (its
environment variable, its command-line flag, its systemd credential), how a raw
value is checked, its default, whether it is a secret and whether it belongs to
the host (``shared``) or to one shop (``shop``). Loading, the command line's
flags, ``check``'s listing, the child environment filter and the README's table
follow from :data:`SETTINGS`; nothing else lists settings by hand.

Everything here is pure: a validator takes the setting's name and a raw value
(a string from a flag, the environment or a credential, or any TOML value) and
returns the typed value or raises :class:`~pulsed._errors.ConfigError` naming it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pulsed._errors import CollectError, ConfigError
from pulsed._hostname import normalize_domain

Scope = Literal["shared", "shop"]
Parser = Callable[[str, Any], Any]

# Ten years. A next heartbeat much further away has no calendar date to be written as
# (state.json, logs): such an interval is a mistake, not a schedule.
MAX_INTERVAL = 10 * 365 * 86400.0
MODULE_COMPOSER = Path("system/library/oc_telegram_shop/composer.json")
DEFAULT_STATE_DIR = Path("/var/lib/pulsed")
# Not root (contract §12): the state under $XDG_STATE_HOME (this, under the home, when
# unset), the status file under $XDG_RUNTIME_DIR when that is set.
USER_STATE_HOME = Path(".local/state")
USER_FOLDER = "pulsed"
STATUS_FILE_NAME = "status.json"
# daemon.log_level's values, and the logging level each stands for.
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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


# --- validators ---------------------------------------------------------------


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, not {type(value).__name__}")
    return value


def nonblank(name: str, value: Any) -> str:
    result = text(name, value)
    if not result.strip():
        raise ConfigError(name, "is empty")
    return result


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(name, f"must be a number of seconds, not {type(value).__name__}")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(name, f"must be a number of seconds, not {value!r:.40}") from None


def timeout(name: str, value: Any) -> float:
    number = _seconds(name, value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(name, f"must be a finite number of seconds > 0, not {value!r:.40}")
    return number


def interval(name: str, value: Any) -> float:
    number = _seconds(name, value)
    # One message for every value out of range: "inf" is as wrong as 0.5 or 1e12, and
    # the reader needs the whole range to pick a right one.
    if not (math.isfinite(number) and 1.0 <= number <= MAX_INTERVAL):
        raise ConfigError(
            name,
            f"must be a finite number of seconds from 1 to {MAX_INTERVAL:.0f} (10 years), "
            f"not {value!r:.40}",
        )
    return number


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(name: str, value: Any) -> str:
    url = text(name, value).strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ConfigError(name, f"{url!r:.80} is not a URL ({exc})") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(name, f"must be an https:// URL, not {url!r:.80}")
    if not all(ch.isprintable() and not ch.isspace() for ch in url):
        raise ConfigError(name, f"{url!r:.80} is not a URL (spaces or control characters)")
    try:
        normalize_domain(parts.netloc)  # it drops the userinfo itself
    except CollectError as exc:
        raise ConfigError(name, f"{url!r:.80} is not a URL ({exc})") from exc
    if parts.username or parts.password:
        raise ConfigError(name, "must not carry a user or password")
    if parts.query or parts.fragment:
        raise ConfigError(name, "must not carry a query or fragment")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(name, f"must use https:// ({host} is not a loopback host)")
    return url.rstrip("/")


def secret(name: str, value: Any) -> Secret:
    raw = nonblank(name, value)
    if raw != raw.strip():
        # Stripping silently would sign with another key than the receiver's.
        raise ConfigError(name, "has leading or trailing whitespace")
    return Secret(raw)


# An HMAC key shorter than this is guessable, and the log redactor could not tell it
# from ordinary text: a one-letter secret would be cut out of every word.
MIN_HEARTBEAT_SECRET = 16


def heartbeat_secret(name: str, value: Any) -> Secret:
    key = secret(name, value)
    if len(key.reveal().encode("utf-8")) < MIN_HEARTBEAT_SECRET:
        raise ConfigError(
            name,
            f"is shorter than {MIN_HEARTBEAT_SECRET} bytes; an HMAC key that short is "
            "guessable (ask AcmeShop Pulse for the shop's full key)",
        )
    return key


def bot_token(name: str, value: Any) -> Secret:
    token = secret(name, value)
    left, sep, right = token.reveal().partition(":")
    if not sep or not left.isdigit() or not right or any(c.isspace() for c in right):
        raise ConfigError(name, "is malformed (expected <bot id>:<key>)")
    return token


def path(name: str, value: Any) -> Path:
    return Path(nonblank(name, value))


def metrics_path(name: str, value: Any) -> Path:
    """A path node_exporter's textfile collector will read: it reads only ``*.prom``."""
    result = path(name, value)
    if result.suffix != ".prom":
        raise ConfigError(
            name,
            f"must end in .prom (node_exporter's textfile collector reads only *.prom), "
            f"not {str(result)!r:.80}",
        )
    return result


def log_level(name: str, value: Any) -> str:
    level = text(name, value).strip().lower()
    if level not in LEVELS:
        raise ConfigError(name, f"must be one of {', '.join(LEVELS)}")
    return level


# --- the declarations ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting.

    ``default`` is the value when the setting is not given anywhere; ``default_doc``,
    when set, says in the README's words how a default that depends on something
    else (another setting, the environment, a shop file) is found, and loading
    derives it. ``refused_flags`` are flags a person might try for a secret: they
    exist only to be refused without echoing the value. ``missing_note`` ends the
    message for a required setting that is not set.
    """

    key: str
    env: str
    field: str
    parse: Parser
    default: object = None
    default_doc: str | None = None
    required: bool = False
    flag: str | None = None
    credential: str | None = None
    secret: bool = False
    scope: Scope = "shared"
    refused_flags: tuple[str, ...] = ()
    missing_note: str = ""

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        """The key inside its section, as the config file spells it."""
        return self.key.split(".", 1)[1]

    @property
    def shown_default(self) -> str:
        """The default as the README's table shows it."""
        if self.required:
            return "required"
        if self.default_doc is not None:
            return self.default_doc
        if self.default is None:
            return "—"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return f"`{self.default}`"

    def sources_hint(self) -> str:
        """Where this setting can be given, for a message saying it is missing."""
        places = [f"credential {self.credential}"] if self.credential else []
        places += [self.env, f"[{self.section}] {self.name}"]
        return ", ".join(places[:-1]) + " or " + places[-1]


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "pulse.api_host", "PULSE_API_HOST", "api_host", base_url, required=True, flag="api-host"
    ),
    Setting(
        "pulse.heartbeat_secret",
        "PULSE_HEARTBEAT_SECRET",
        "heartbeat_secret",
        heartbeat_secret,
        required=True,
        credential="pulse_heartbeat_secret",
        secret=True,
        # Per shop: contract §10 gives each shop its own credential, else the shared one.
        scope="shop",
        refused_flags=("heartbeat-secret", "secret"),
        missing_note="; pulse.api_key is not a substitute",
    ),
    Setting("pulse.timeout", "PULSE_TIMEOUT", "timeout", timeout, default=5.0, flag="timeout"),
    Setting(
        "pulse.api_key",
        "PULSE_API_KEY",
        "api_key",
        secret,
        secret=True,
        refused_flags=("api-key",),
    ),
    Setting(
        "telegram.bot_token",
        "TELEGRAM_BOT_TOKEN",
        "bot_token",
        bot_token,
        credential="telegram_bot_token",
        secret=True,
        scope="shop",
        refused_flags=("bot-token", "token"),
    ),
    Setting(
        "telegram.api_base",
        "TELEGRAM_API_BASE",
        "telegram_api_base",
        base_url,
        default="https://api.telegram.org",
        flag="telegram-api-base",
    ),
    Setting("shop.root", "OPENCART_ROOT", "shop_root", path, flag="shop-root", scope="shop"),
    Setting(
        "shop.composer_json",
        "PULSED_COMPOSER_JSON",
        "composer_json",
        path,
        default_doc=f"`<root>/{MODULE_COMPOSER}`",
        flag="composer-json",
        scope="shop",
    ),
    Setting(
        "shop.domain",
        "PULSED_DOMAIN",
        "domain",
        text,
        default_doc="from `config.php`",
        flag="domain",
        scope="shop",
    ),
    Setting(
        "shop.php_binary", "PULSED_PHP", "php_binary", nonblank, "php", flag="php", scope="shop"
    ),
    Setting(
        "daemon.state_dir",
        "PULSED_STATE_DIR",
        "state_dir",
        path,
        default_doc=(
            f"`$STATE_DIRECTORY`, else `{DEFAULT_STATE_DIR}` as root, "
            f"`$XDG_STATE_HOME/{USER_FOLDER}` (`~/{USER_STATE_HOME}/{USER_FOLDER}`) otherwise"
        ),
        flag="state-dir",
    ),
    Setting(
        "daemon.interval",
        "PULSED_INTERVAL",
        "interval",
        interval,
        default=3600.0,
        flag="interval",
    ),
    Setting(
        "daemon.log_level",
        "PULSED_LOG_LEVEL",
        "log_level",
        log_level,
        default="info",
        flag="log-level",
    ),
    # Contract §11: off unless set; the units set it under /run/pulsed/. Not root, it
    # goes under $XDG_RUNTIME_DIR when that is set (§12; cron does not set it).
    Setting(
        "daemon.status_file",
        "PULSED_STATUS_FILE",
        "status_file",
        path,
        default_doc=(
            f"— as root; `$XDG_RUNTIME_DIR/{USER_FOLDER}/{STATUS_FILE_NAME}` otherwise, "
            "when that is set"
        ),
        flag="status-file",
    ),
    Setting(
        "daemon.metrics_file",
        "PULSED_METRICS_FILE",
        "metrics_file",
        metrics_path,
        flag="metrics-file",
    ),
)

BY_KEY = {s.key: s for s in SETTINGS}
SECTIONS = frozenset(s.section for s in SETTINGS)
SECRETS = tuple(s.key for s in SETTINGS if s.secret)
SECRET_VARIABLES = frozenset(s.env for s in SETTINGS if s.secret)
# Flags that name a setting, as the command line spells them (without "--").
FLAG_SETTINGS = {s.flag: s.key for s in SETTINGS if s.flag}
REFUSED_FLAGS = {flag: s.key for s in SETTINGS for flag in s.refused_flags}
