"""Configuration: loading every declared setting, where it came from, and whether it can work.

Precedence, highest first: command-line flag → environment variable → systemd
credential (secrets only) → TOML config file → default. The settings themselves
are declared in :mod:`pulsed._settings`; this module finds each one's raw value,
checks it with its declared validator, derives the defaults that depend on
something else (the composer.json under ``shop.root``, the domain in
``config.php``, the state folder and status file of a user who is not root) and
builds each shop's :class:`Config` into one :class:`Setup`. :func:`load_setup` takes
all of its inputs as arguments (flags, an environment mapping, the default config
path, the user) so it can be tested without touching the process. A shared setting
that cannot work is a :class:`ConfigError` naming it, which the command line turns
into one line and exit 78; a shop's own is a :class:`Disabled` shop, and the others
run. Secrets are held in :class:`Secret`, whose ``str`` and ``repr`` never show the
value.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pulsed import _settings, _shop
from pulsed._errors import CollectError, ConfigError, FileError
from pulsed._files import Read, check_owner_only, read_regular
from pulsed._hostname import normalize_domain
from pulsed._settings import (
    BY_KEY,
    DEFAULT_STATE_DIR,
    MAX_INTERVAL,
    MODULE_COMPOSER,
    SECRETS,
    SECTIONS,
    SETTINGS,
    STATUS_FILE_NAME,
    USER_FOLDER,
    USER_STATE_HOME,
    Secret,
    Setting,
)
from pulsed._state import DEFAULT_SHOP, shop_state_dir
from pulsed._toml import tomllib

__all__ = ["MAX_INTERVAL", "SECRETS", "SETTINGS", "Config", "Secret", "Setting", "load_setup"]

DEFAULT_CONFIG_PATH = Path("/etc/pulsed/pulsed.toml")
MAX_CONFIG_BYTES = 1 << 20
# What pulsed refuses to do with a config file or folder another user could change.
CONFIG_USE = "take settings from it"


@dataclass(frozen=True)
class Config:
    """One shop's configuration: the shared settings and its own.

    ``state_dir`` is the shop's own state folder; ``name`` is ``default`` for the
    one-shop configuration of ``[shop]`` and the variables.
    """

    name: str
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
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
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


@dataclass(frozen=True)
class ConfigFile:
    """One TOML file as read: its flattened known settings and its ``[shops.*]`` tables."""

    path: Path
    values: dict[str, Any]
    shops: dict[str, Any]
    warnings: list[str]
    readable_by_others: bool


def _read_toml(path: Path) -> tuple[dict[str, Any], os.stat_result]:
    try:
        got = read_regular(path, MAX_CONFIG_BYTES)
    except FileError as exc:
        raise ConfigError("config", f"{exc}; cannot be read") from exc
    # A config file steers what pulsed runs (php_binary) and where the bot token
    # goes (telegram.api_base): one another user could change is not obeyed.
    check_owner_only(path, got.info, "config", use=CONFIG_USE)
    folder = path.absolute().parent
    check_owner_only(folder, folder.stat(), "config", use=CONFIG_USE)
    return _parse_toml(path, got), got.info


def _parse_toml(path: Path, got: Read) -> dict[str, Any]:
    if got.cut:
        raise ConfigError("config", f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        # "utf-8-sig": a BOM, as some editors save one, is not TOML's business.
        return tomllib.loads(got.data.decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"{path}: not UTF-8 ({exc.reason})") from exc


def _flatten(
    path: Path, raw: Mapping[str, Any], sections: frozenset[str]
) -> tuple[dict[str, Any], list[str]]:
    """Known ``section.key`` values of ``raw`` and the names of unknown ones."""
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for section, table in raw.items():
        if not isinstance(table, dict):
            if section in sections:
                raise ConfigError(section, f"{path}: [{section}] must be a table")
            unknown.append(section)
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            if name in BY_KEY and section in sections:
                values[name] = value
            else:
                unknown.append(name)
    return values, unknown


def read_config_file(path: Path) -> ConfigFile:
    raw, info = _read_toml(path)
    shops = raw.pop("shops", {})
    if not isinstance(shops, dict):
        raise ConfigError("shops", f"{path}: [shops] must hold one table per shop")
    values, unknown = _flatten(path, raw, SECTIONS)
    warnings = (
        [f"{path}: unknown settings ignored: {', '.join(sorted(unknown))}"] if unknown else []
    )
    others = bool(info.st_mode & (stat.S_IROTH | stat.S_IWOTH))
    return ConfigFile(path, values, shops, warnings, others)


def _credential_path(directory: str, name: str) -> str:
    """The file of credential ``name``: a string, not a Path, as a reload of 2,000
    shops reads and checks 4,000 of them."""
    return f"{directory.rstrip('/')}/{name}"


def read_credential(environ: Mapping[str, str], name: str) -> str | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = _credential_path(directory, name)
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
            return normalize_domain(str(override))
        except CollectError as exc:
            raise ConfigError("shop.domain", str(exc)) from exc
    if root is None:
        raise ConfigError("shop.domain", "not set, and no shop.root to read config.php from")
    try:
        return _shop.domain(_shop.read(root / "config.php"))
    except CollectError as exc:
        raise ConfigError("shop.domain", f"not set, and {exc}") from exc


@dataclass(frozen=True)
class User:
    """Who pulsed runs as, for the defaults that depend on it: root or not, and the home."""

    euid: int
    home: str | None

    @classmethod
    def current(cls, environ: Mapping[str, str]) -> User:
        euid = os.geteuid()
        home = environ.get("HOME")
        if not home and euid != 0:
            try:
                home = pwd.getpwuid(euid).pw_dir
            except KeyError:  # a uid with no passwd entry (a container's, say)
                home = None
        return cls(euid, home or None)


# Root, for callers that decide for root whoever runs them.
ROOT = User(0, "/root")


def _absolute(environ: Mapping[str, str], name: str) -> str | None:
    """``$name`` when it is an absolute path; the XDG spec says to ignore a relative one."""
    value = environ.get(name, "")
    return value if Path(value).is_absolute() else None


def default_state_dir(environ: Mapping[str, str], user: User) -> tuple[Path, str]:
    """The state folder when ``daemon.state_dir`` is not set, and where it came from.

    systemd's ``$STATE_DIRECTORY`` first; else root keeps ``/var/lib/pulsed`` as it
    always has, and any other user ``$XDG_STATE_HOME/pulsed``
    (``~/.local/state/pulsed``), a folder of its own it can write: a user's
    ``once`` from cron that found ``/var/lib/pulsed`` unwritable would otherwise
    keep no state, and send at every run.
    """
    if environ.get("STATE_DIRECTORY"):
        # systemd passes a colon-separated list when a unit names several.
        return Path(environ["STATE_DIRECTORY"].split(":")[0]), "default: $STATE_DIRECTORY"
    if user.euid == 0:
        return DEFAULT_STATE_DIR, "default"
    xdg = _absolute(environ, "XDG_STATE_HOME")
    if xdg is not None:
        return Path(xdg) / USER_FOLDER, "default: $XDG_STATE_HOME, not root"
    if user.home is None or not Path(user.home).is_absolute():
        raise ConfigError(
            "daemon.state_dir",
            "not set, and this user (not root) has neither $XDG_STATE_HOME nor a home "
            "folder to keep the state in; set it",
        )
    where = f"default: ~/{USER_STATE_HOME}, not root"
    return Path(user.home) / USER_STATE_HOME / USER_FOLDER, where


def default_status_file(environ: Mapping[str, str], user: User) -> tuple[Path | None, str]:
    """The status file when ``daemon.status_file`` is not set, and where it came from.

    None for root (the units set one under ``/run``). Any other user's goes under
    ``$XDG_RUNTIME_DIR``, its own, in memory, gone at logout as its session is: a
    user unit has it, cron does not set it, and then there is none.
    """
    if user.euid == 0:
        return None, "default"
    runtime = _absolute(environ, "XDG_RUNTIME_DIR")
    if runtime is None:
        return None, "default: not root, no $XDG_RUNTIME_DIR"
    return Path(runtime) / USER_FOLDER / STATUS_FILE_NAME, "default: $XDG_RUNTIME_DIR, not root"


def state_dir_of(raw: Any, environ: Mapping[str, str], user: User) -> Path:
    if raw is not None:
        return _settings.path("daemon.state_dir", raw)
    return default_state_dir(environ, user)[0]


# --- the whole configuration ------------------------------------------------


def _missing(setting: Setting, environ: Mapping[str, str], shop: str | None = None) -> ConfigError:
    """The error of a required setting that is not set; for a listed ``shop``'s secret
    it names the shop's own credential too, and under systemd what loads a new one."""
    reason = f"is required ({setting.sources_hint()}){setting.missing_note}"
    if setting.credential:
        names = setting.credential
        if shop is not None:
            names = f"{setting.credential}.{shop} nor {setting.credential}"
        directory = environ.get("CREDENTIALS_DIRECTORY")
        # By hand, outside the service, a credential is simply not there: say where
        # it is looked for, and how to point a check at the credential files. Under
        # the service, systemd reads the credential files only when the unit starts.
        reason += (
            f"; no credential {names} in $CREDENTIALS_DIRECTORY ({directory}); a credential "
            "file added since the unit started (pulsed add-secrets writes them into "
            "/etc/pulsed/credentials) is loaded only after 'systemctl daemon-reload "
            "&& systemctl restart pulsed' (a restart sends nothing early)"
            if directory
            else "; credentials are read from $CREDENTIALS_DIRECTORY, which systemd sets "
            "only for the service (by hand: sudo CREDENTIALS_DIRECTORY=/etc/pulsed/credentials "
            "pulsed check)"
        )
    return ConfigError(setting.key, reason)


MAX_SHOP_NAME = 32
SHOP_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_SHOP_NAME}}}")
SHOPS_DIR = "shops.d"
SHOP_SETTINGS = tuple(s for s in SETTINGS if s.scope == "shop" and not s.secret)
SHOP_SECRETS = tuple(s for s in SETTINGS if s.scope == "shop" and s.secret)
# What a [shop] table, its variable or its flag may still say when shops are listed:
# a default for every shop. A root or a domain for all of them would be a mistake.
SHOP_DEFAULTS = frozenset({"shop.php_binary"})


@dataclass(frozen=True)
class Disabled:
    """A shop that cannot work, and why (``error.setting`` names the setting); ``root``
    as its configuration names it, if it does: ``discover`` and ``add-shop`` then know
    the shop by its folder, and never list that folder again under another name."""

    name: str
    error: ConfigError
    root: Path | None = None


@dataclass(frozen=True)
class Setup:
    """The whole configuration: the shared settings, and every shop with its own view."""

    shops: tuple[Config, ...]
    disabled: tuple[Disabled, ...]
    state_dir: Path  # daemon.state_dir: the lock, and every shop's state under it
    log_level: str
    config_file: Path | None
    warnings: tuple[str, ...]
    listed: bool  # shops come from [shops.*] / shops.d/, not the one-shop [shop]
    status_file: Path | None = None  # daemon.status_file, shared by every shop
    metrics_file: Path | None = None
    # The default status file's folder under $XDG_RUNTIME_DIR, which pulsed makes
    # when it is missing (a user unit's RuntimeDirectory= makes it; cron's once does not).
    status_folder: Path | None = None

    def secrets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for shop in self.shops for s in shop.secrets()))

    def select(self, names: Sequence[str]) -> Setup:
        """Only the shops named (``--shop``); a name that is no shop is a ConfigError."""
        if not names:
            return self
        known = {c.name for c in self.shops} | {d.name for d in self.disabled}
        for name in names:
            if name not in known:
                raise ConfigError(
                    "--shop", f"no shop named {name!r} (known: {', '.join(sorted(known))})"
                )
        return replace(
            self,
            shops=tuple(c for c in self.shops if c.name in names),
            disabled=tuple(d for d in self.disabled if d.name in names),
        )


@dataclass(frozen=True)
class Listed:
    """The shops a config file lists: each one's raw ``shop.*`` table, each ``shops.d``
    file that cannot be one (it disables the shop it names), and problems to warn of."""

    tables: dict[str, dict[str, Any]]
    broken: dict[str, ConfigError]
    problems: list[str]

    def __bool__(self) -> bool:
        return bool(self.tables or self.broken or self.problems)


def is_shop_file(path: Path) -> bool:
    """Whether a ``shops.d`` entry names a shop: editors' leftovers (``.#anna.toml``,
    ``.anna.toml.swp``, ``anna.toml~``: its suffix is ``.toml~``) do not."""
    return path.suffix == ".toml" and not path.name.startswith(".")


def _shop_file(path: Path) -> dict[str, Any] | ConfigError:
    """One ``shops.d`` file's content, or why it cannot be read as one.

    Only a file another user could write raises (and stops the start): a planted
    file is not obeyed. Anything else wrong with it disables the one shop it names.
    """
    try:
        got = read_regular(path, MAX_CONFIG_BYTES)
    except FileError as exc:
        return ConfigError(SHOPS_DIR, f"{exc}; cannot be read")
    check_owner_only(path, got.info, "config", use=CONFIG_USE)
    try:
        return _parse_toml(path, got)
    except ConfigError as exc:
        return ConfigError(SHOPS_DIR, exc.reason)


def _listed_shops(cfg_file: ConfigFile | None) -> Listed:
    """The shops of ``[shops.<name>]`` tables and ``shops.d/<name>.toml`` files."""
    listed = Listed({}, {}, [])
    if cfg_file is None:
        return listed
    for name, table in cfg_file.shops.items():
        if not isinstance(table, dict):
            listed.problems.append(f"{cfg_file.path}: [shops.{name}] must be a table")
            continue
        listed.tables[name] = table
    folder = cfg_file.path.absolute().parent / SHOPS_DIR
    if not folder.is_dir():
        return listed
    check_owner_only(folder, folder.stat(), "config", use=CONFIG_USE)
    for path in sorted(p for p in folder.iterdir() if is_shop_file(p)):
        name = path.stem
        if name in listed.tables:
            listed.problems.append(f"{path}: shop {name!r} is also a [shops.{name}] table")
            listed.tables.pop(name)
            continue
        raw = _shop_file(path)
        if isinstance(raw, ConfigError):
            listed.broken[name] = raw
            continue
        table = raw.pop("shop", {})
        if not isinstance(table, dict):
            listed.broken[name] = ConfigError(SHOPS_DIR, f"{path}: shop must be a [shop] table")
            continue
        if raw:
            listed.problems.append(f"{path}: only a [shop] table belongs here, not {sorted(raw)}")
        listed.tables[name] = table
    return listed


def _shop_values(
    name: str, table: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in table.items():
        full = f"shop.{key}"
        if full in BY_KEY and BY_KEY[full].scope == "shop" and not BY_KEY[full].secret:
            values[full] = value
        else:
            unknown.append(key)
    warnings = (
        [f"{where}: unknown keys of shop {name!r} ignored: {', '.join(unknown)}"] if unknown else []
    )
    return values, warnings


def _secret_of(
    setting: Setting, name: str, shared: tuple[Any, str], environ: Mapping[str, str]
) -> tuple[Any, str]:
    """A shop's own credential ``<credential>.<name>`` and its source, else the shared one."""
    if setting.credential:
        own = f"{setting.credential}.{name}"
        value = read_credential(environ, own)
        if value is not None:
            return value, f"credential {own}"
    return shared


def _one_shop(
    name: str,
    raws: Mapping[str, Any],
    shared: Mapping[str, Any],
    top: Path,
    environ: Mapping[str, str],
    *,
    secrets: bool,
    config_file: Path | None,
    sources: dict[str, str],
) -> Config:
    """Validate one shop's raw values against the shared ones; ConfigError names the setting.

    Without ``secrets`` (``status``, which sends nothing) a missing secret is no error.
    """
    values = dict(shared)
    for setting in (*SHOP_SECRETS, *SHOP_SETTINGS):
        raw = raws.get(setting.key)
        if raw is None and setting.required:
            if setting.secret and not secrets:
                values[setting.key] = Secret("")  # never used: nothing is sent
                continue
            raise _missing(setting, environ, None if name == DEFAULT_SHOP else name)
        values[setting.key] = setting.default if raw is None else setting.parse(setting.key, raw)
    root = values["shop.root"]
    if values["shop.composer_json"] is None and root is not None:
        values["shop.composer_json"] = root / MODULE_COMPOSER
    values["shop.domain"] = resolve_domain(values["shop.domain"], root)
    values["daemon.state_dir"] = shop_state_dir(top, name)
    return Config(
        name=name,
        config_file=config_file,
        sources=sources,
        **{s.field: values[s.key] for s in SETTINGS},
    )


# The world-readable files pulsed writes; neither may be (or sit beside) a state file.
PUBLIC_FILES = ("daemon.status_file", "daemon.metrics_file")


def check_outside_state(
    setting: str, public: Path | None, state_dir: Path, *, real: bool = False
) -> None:
    """Refuse a status or metrics file in the state folder: written there it could replace
    a state (each ``once`` would then find none and send), and a state's folder is private.

    ``real``: compare the paths with links resolved (done where files may be looked at).
    """
    if public is None:
        return
    where = os.path.realpath if real else os.path.abspath
    folder, state = Path(where(public.parent)), Path(where(state_dir))
    if folder == state or state in folder.parents:
        raise ConfigError(
            setting, f"{public} is inside the state folder {state_dir}; put it elsewhere"
        )


def load_setup(
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    default_path: Path = DEFAULT_CONFIG_PATH,
    secrets: bool = True,
    user: User | None = None,
) -> Setup:
    """Every shop that can work, every one that cannot, or a ConfigError for a shared setting.

    A shop that cannot work is :class:`Disabled`, not an error: the others run.
    Without ``secrets``, a missing secret disables nothing (``status`` sends nothing).
    ``user`` (this process's by default) decides the state folder's and the status
    file's defaults.
    """
    user = User.current(environ) if user is None else user
    path = config_path(flags, environ, default_path)
    cfg_file = read_config_file(path) if path is not None else None
    file_values = cfg_file.values if cfg_file is not None else {}
    picked = {s.key: pick(s, flags, environ, file_values) for s in SETTINGS}
    warnings = _file_warnings(cfg_file, picked)
    shared, derived = _shared_values(picked, environ, user)
    top = shared["daemon.state_dir"]
    sources = {key: derived.get(key, source) for key, (_, source) in picked.items()}
    listed = _listed_shops(cfg_file)
    raws: list[tuple[str, Mapping[str, Any], Mapping[str, str]]] = []
    disabled = [Disabled(name, problem) for name, problem in listed.broken.items()]
    if not listed:
        single = {s.key: picked[s.key][0] for s in (*SHOP_SECRETS, *SHOP_SETTINGS)}
        raws.append((DEFAULT_SHOP, single, {}))
    else:
        warnings += _ignored_for_listed(picked) + listed.problems
        for name, table in listed.tables.items():
            if not SHOP_NAME.fullmatch(name):
                why = f"{name[:40]!r} is not a shop name (1-32 of A-Z a-z 0-9 _ -)"
                disabled.append(Disabled(name[:40], ConfigError("shops", why)))
                continue
            values, more = _shop_values(name, table, str(path))
            warnings += more
            raws.append((name, *_listed_raws(name, values, picked, environ)))
    warnings += _readable_credentials(environ, picked, [own for _, _, own in raws])
    shops: list[Config] = []
    for name, raw, own in raws:
        try:
            cfg = _one_shop(
                name,
                raw,
                shared,
                top,
                environ,
                secrets=secrets,
                config_file=path,
                sources={**sources, **own},
            )
        except ConfigError as exc:
            root = raw.get("shop.root")
            disabled.append(Disabled(name, exc, Path(root) if isinstance(root, str) else None))
        else:
            shops.append(cfg)
    return Setup(
        shops=tuple(sorted(shops, key=lambda c: c.name)),
        disabled=tuple(sorted(disabled, key=lambda d: d.name)),
        state_dir=top,
        log_level=shared["daemon.log_level"],
        config_file=path,
        warnings=tuple(warnings),
        listed=bool(listed),
        status_file=shared["daemon.status_file"],
        metrics_file=shared["daemon.metrics_file"],
        # A default's folder only: a status file that is set is where the operator put it.
        status_folder=(
            shared["daemon.status_file"].parent
            if "daemon.status_file" in derived and shared["daemon.status_file"] is not None
            else None
        ),
    )


def _shared_values(
    picked: Mapping[str, tuple[Any, str]], environ: Mapping[str, str], user: User
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every shared setting's value, checked, and the sources of the defaults derived
    from the environment and the user; a ConfigError for one that cannot work.

    No shared setting is a required secret (a shop's secret is its own, §10), so a
    ``status`` without secrets needs no exception here.
    """
    shared: dict[str, Any] = {}
    derived: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.scope == "shop":
            continue
        raw = picked[setting.key][0]
        if raw is None and setting.required:
            raise _missing(setting, environ)
        shared[setting.key] = setting.default if raw is None else setting.parse(setting.key, raw)
    # The shared heartbeat secret is checked here, not only in each shop that takes it:
    # a malformed one stops the start (naming it) instead of disabling every shop.
    hb_secret = BY_KEY["pulse.heartbeat_secret"]
    if (shared_secret := picked[hb_secret.key][0]) is not None:
        hb_secret.parse(hb_secret.key, shared_secret)
    if shared["daemon.state_dir"] is None:
        shared["daemon.state_dir"], derived["daemon.state_dir"] = default_state_dir(environ, user)
    if picked["daemon.status_file"][0] is None:
        shared["daemon.status_file"], derived["daemon.status_file"] = default_status_file(
            environ, user
        )
    top = shared["daemon.state_dir"]
    for key in PUBLIC_FILES:
        check_outside_state(key, shared[key], top)
    return shared, derived


Picked = Mapping[str, tuple[Any, str]]


def _file_warnings(cfg_file: ConfigFile | None, picked: Picked) -> list[str]:
    """The config file's own warnings, and those of the secrets it holds."""
    if cfg_file is None:
        return []
    warnings = list(cfg_file.warnings)
    in_file = [key for key in SECRETS if key in cfg_file.values]
    if cfg_file.readable_by_others and in_file:
        warnings.append(
            f"{cfg_file.path}: holds a secret but others may read it "
            "(chmod 600, or use a credential)"
        )
    for key in in_file:
        if picked[key][1] != "file":
            warnings.append(
                f"{cfg_file.path}: its {key} is shadowed by the {picked[key][1]} value; "
                "remove it from the file so nobody relies on it"
            )
    return warnings


def _readable_credentials(
    environ: Mapping[str, str], picked: Picked, owns: Sequence[Mapping[str, str]]
) -> list[str]:
    """A secret taken from a credential file others may read (contract §1: a warning).

    Under systemd the file read is the service's private copy, never readable by
    others; a folder named by hand or by a user unit (``~/.config/pulsed/credentials``)
    is only as private as its files' modes.
    """
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return []
    names = [s.credential for s in SETTINGS if s.credential and picked[s.key][1] == "credential"]
    mine = "credential "  # the source of a shop's own credential, as _secret_of says it
    names += [s.removeprefix(mine) for own in owns for s in own.values() if s.startswith(mine)]
    warnings = []
    for name in dict.fromkeys(names):
        path = _credential_path(directory, name)
        try:
            readable = bool(os.stat(path).st_mode & stat.S_IROTH)  # noqa: PTH116 -- _credential_path: no Path each
        except OSError:
            continue  # read a moment ago; gone now, nothing to warn of
        if readable:
            warnings.append(f"credential {path} holds a secret but others may read it (chmod 600)")
    return warnings


def _ignored_for_listed(picked: Picked) -> list[str]:
    """A ``[shop]`` value (file, variable or flag) that listed shops do not take."""
    return [
        f"{setting.key} from the {source} is ignored: with [shops.*] or "
        f"{SHOPS_DIR}/, each shop names its own"
        for setting in SHOP_SETTINGS
        for value, source in (picked[setting.key],)
        if value is not None and setting.key not in SHOP_DEFAULTS
    ]


def _listed_raws(
    name: str, values: Mapping[str, Any], picked: Picked, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A listed shop's raw values, and the sources of those that are its own."""
    raws: dict[str, Any] = {}
    own: dict[str, str] = {}
    for setting in SHOP_SETTINGS:
        default = picked[setting.key][0] if setting.key in SHOP_DEFAULTS else None
        raws[setting.key] = values.get(setting.key, default)
        if setting.key in values:
            own[setting.key] = "file"
    for setting in SHOP_SECRETS:
        raws[setting.key], own[setting.key] = _secret_of(
            setting, name, picked[setting.key], environ
        )
    return raws, own


def load_state_dir(
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    default_path: Path = DEFAULT_CONFIG_PATH,
    user: User | None = None,
) -> Path:
    """Only the state folder, for ``status``: the rest of the configuration may be broken."""
    file_values: dict[str, Any] = {}
    path = config_path(flags, environ, default_path)
    if path is not None:
        try:
            file_values = read_config_file(path).values
        except ConfigError:
            file_values = {}
    raw, _ = pick(BY_KEY["daemon.state_dir"], flags, environ, file_values)
    return state_dir_of(raw, environ, User.current(environ) if user is None else user)
