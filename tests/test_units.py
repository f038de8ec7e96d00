"""A cheap guard on systemd/: the directives the contract relies on are there.

The heavy checks (systemd-analyze verify and the security score) are in
.ci/check-units; this runs everywhere, without systemd.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pulsed._settings import MAX_INTERVAL
from pulsed._settings import SETTINGS as DECLARED
from pulsed._toml import tomllib

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNITS = ("pulsed.service", "pulsed@.service")

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """Sections -> (key, value) in order; repeated keys kept; `\\` continues a line."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        assert current is not None, f"{path.name}: {key} outside a section"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, key: str, section: str = "Service") -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def single(unit: Unit, key: str, section: str = "Service") -> str:
    found = values(unit, key, section)
    assert len(found) == 1, f"{key}= wanted once in [{section}], found {found}"
    return found[0]


@pytest.fixture(params=UNITS)
def unit(request: pytest.FixtureRequest) -> tuple[str, Unit]:
    name: str = request.param
    return name, parse_unit(SYSTEMD / name)


def test_notify_service_contract(unit: tuple[str, Unit]) -> None:
    _name, u = unit
    assert single(u, "Type") == "notify"
    assert single(u, "NotifyAccess") == "main"
    assert re.fullmatch(r"\d+(s|min)", single(u, "WatchdogSec"))
    assert single(u, "Restart") == "on-failure"
    assert "78" in single(u, "RestartPreventExitStatus").split()
    assert single(u, "ExecStart") == "/usr/local/bin/pulsed run"
    assert single(u, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert "-/etc/default/pulsed" in values(u, "EnvironmentFile")
    assert single(u, "WantedBy", "Install") == "multi-user.target"


def test_credentials_and_state(unit: tuple[str, Unit]) -> None:
    name, u = unit
    base = "/etc/pulsed/credentials/%i/" if "@" in name else "/etc/pulsed/credentials/"
    loaded = dict(v.split(":", 1) for v in values(u, "LoadCredential"))
    assert loaded == {
        "pulse_heartbeat_secret": base + "pulse_heartbeat_secret",
        "telegram_bot_token": base + "telegram_bot_token",
    }
    # An empty fallback per credential: a missing file reaches the daemon (exit 78,
    # one clear line) instead of failing systemd's CREDENTIALS step.
    fallbacks = {v.split(":", 1)[0] for v in values(u, "SetCredential")}
    assert fallbacks == set(loaded)
    # Instances under a root of their own: /var/lib/pulsed is the single unit's
    # private folder (a DynamicUser= symlink), and systemd refuses to make it also the
    # instances' parent (status 238), so the two could not run on one host.
    assert single(u, "StateDirectory") == ("pulsed-instances/%i" if "@" in name else "pulsed")
    assert single(u, "DynamicUser") == "yes"
    # No secret travels through the environment the unit sets.
    for value in values(u, "Environment"):
        assert not re.search(r"SECRET|TOKEN", value), value


def test_sandbox(unit: tuple[str, Unit]) -> None:
    _name, u = unit
    assert single(u, "ProtectSystem") == "strict"
    assert single(u, "CapabilityBoundingSet") == ""
    assert single(u, "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert values(u, "SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    for key in ("NoNewPrivileges", "PrivateUsers", "PrivateDevices", "RestrictNamespaces"):
        assert single(u, key) == "yes", key


def test_template_differs_only_where_it_must() -> None:
    single_unit = parse_unit(SYSTEMD / "pulsed.service")
    template = parse_unit(SYSTEMD / "pulsed@.service")
    assert "PULSED_CONFIG=/etc/pulsed/%i.toml" in values(template, "Environment")
    assert single(template, "User") == "pulsed-%i"
    assert "-/etc/default/pulsed-%i" in values(template, "EnvironmentFile")
    # Nothing runs as root on paths the unit's user could plant (issue 16, row 1), and
    # starting an instance never takes another unit's state (row 2): no ExecStartPre=.
    assert values(template, "ExecStartPre") == []
    assert not (SYSTEMD / "pulsed-adopt-state").exists()
    assert "PULSED_STATUS_FILE=/run/pulsed-instances/%i/status.json" in values(
        template, "Environment"
    )
    per_instance = {
        "LoadCredential",
        "StateDirectory",
        "RuntimeDirectory",
        "User",
        "Environment",
        "EnvironmentFile",
        "ExecStartPre",
    }

    def shared(u: Unit) -> list[tuple[str, str]]:
        return [(k, v) for k, v in u["Service"] if k not in per_instance]

    # Hardening and behaviour stay identical: a change to one unit must go to both.
    assert shared(template) == shared(single_unit)
    assert template["Install"] == single_unit["Install"]


SETTINGS: dict[str, list[str]] = {}
for _setting in DECLARED:
    SETTINGS.setdefault(_setting.section, []).append(_setting.name)
VARIABLES = [s.env for s in DECLARED]


def test_example_config_documents_every_setting_and_holds_no_secret() -> None:
    text = (SYSTEMD / "pulsed.toml.example").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert set(config) == set(SETTINGS)
    for section, keys in SETTINGS.items():
        block = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
        for key in keys:
            assert re.search(rf"^#?{key} = ", block, re.MULTILINE), f"{section}.{key}"
    for variable in VARIABLES:
        assert variable in text, variable
    assert "heartbeat_secret" not in config["pulse"]
    assert "api_key" not in config["pulse"]
    assert "bot_token" not in config["telegram"]
    assert config["daemon"]["interval"] == 3600
    # The range the daemon accepts, not a looser one (contract §1: 1 s to 10 years).
    interval_doc = text.split("[daemon]", 1)[1].split("\ninterval = ", 1)[0]
    assert f"from 1 to {MAX_INTERVAL:.0f} (10 years)" in interval_doc
    assert config["pulse"]["api_host"].startswith("https://")


def test_default_file_is_an_environment_file_without_secrets() -> None:
    lines = (SYSTEMD / "pulsed.default").read_text(encoding="utf-8").splitlines()
    for line in lines:
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", line), line
            assert not re.search(r"SECRET|TOKEN", line), line


def test_credentials_layout_names_both_credentials() -> None:
    text = (SYSTEMD / "credentials.example" / "README.md").read_text(encoding="utf-8")
    for name in ("pulse_heartbeat_secret", "telegram_bot_token"):
        assert f"/etc/pulsed/credentials/{name}" in text
    assert "/etc/pulsed/credentials/shop1/" in text


def test_make_install_prints_a_check_that_finds_the_credentials(tmp_path: Path) -> None:
    # `pulsed check` by hand has no $CREDENTIALS_DIRECTORY (systemd sets it for the
    # service only), so the printed next step must point it where the unit loads from.
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make here")
    shown = subprocess.run(
        [make, "-n", "install", f"DESTDIR={tmp_path}"],
        cwd=SYSTEMD.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (step,) = [line for line in shown.splitlines() if "pulsed check" in line]
    found = re.search(r"CREDENTIALS_DIRECTORY=(\S+) \S*pulsed check", step)
    assert found, step
    loaded_from = {
        str(Path(v.split(":", 1)[1]).parent)
        for v in values(parse_unit(SYSTEMD / "pulsed.service"), "LoadCredential")
    }
    assert loaded_from == {found.group(1)}
    docs = (SYSTEMD.parent / "docs" / "systemd.md").read_text(encoding="utf-8")
    assert f"sudo CREDENTIALS_DIRECTORY={found.group(1)} pulsed check" in docs


def test_credentials_generator_loads_each_per_shop_file_under_its_own_name(
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in (
        "pulse_heartbeat_secret",  # the shared one: the unit loads it itself
        "pulse_heartbeat_secret.shop-1",
        "telegram_bot_token.Shop_2",
        "pulse_heartbeat_secret.a.b",  # not a shop name
        "pulse_heartbeat_secret." + "x" * 33,  # too long for one
        "other.shop1",
    ):
        (credentials / name).write_text("s")
    (credentials / "telegram_bot_token.shop3").symlink_to(credentials / "other.shop1")
    out = tmp_path / "normal"
    subprocess.run(
        [str(SYSTEMD / "pulsed-credentials-generator"), str(out), str(tmp_path), str(tmp_path)],
        env={"PULSED_CREDENTIALS_DIR": str(credentials), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    conf = parse_unit(out / "pulsed.service.d" / "50-shop-credentials.conf")
    assert values(conf, "LoadCredential") == [
        f"pulse_heartbeat_secret.shop-1:{credentials}/pulse_heartbeat_secret.shop-1",
        f"telegram_bot_token.Shop_2:{credentials}/telegram_bot_token.Shop_2",
    ]
    # A fallback each, so a file removed before the next daemon-reload fails no start.
    assert values(conf, "SetCredential") == [
        "pulse_heartbeat_secret.shop-1:\\n",
        "telegram_bot_token.Shop_2:\\n",
    ]


def test_credentials_generator_writes_nothing_without_per_shop_files(tmp_path: Path) -> None:
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "pulse_heartbeat_secret").write_text("s")
    subprocess.run(
        [str(SYSTEMD / "pulsed-credentials-generator"), str(tmp_path / "normal")],
        env={"PULSED_CREDENTIALS_DIR": str(tmp_path / "credentials"), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert not (tmp_path / "normal").exists()


# --- the user unit (systemctl --user, docs/without-root.md) -----------------------------

USER_UNIT = SYSTEMD / "user" / "pulsed.service"
# What a user manager cannot do, or can only with unprivileged user namespaces (which
# many shared hosts refuse, and without which the unit would not start at all).
SYSTEM_ONLY = (
    "DynamicUser",
    "User",
    "Group",
    "SupplementaryGroups",
    "PrivateUsers",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateIPC",
    "PrivateMounts",
    "ProtectHostname",
    "ProtectClock",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "ReadWritePaths",
    "BindReadOnlyPaths",
    "LoadCredential",
    "SetCredential",
    "StateDirectory",
)


def test_the_user_unit_keeps_the_daemons_contract_with_systemd() -> None:
    u = parse_unit(USER_UNIT)
    assert single(u, "Type") == "notify"
    assert single(u, "NotifyAccess") == "main"
    assert single(u, "WatchdogSec") == "1min"
    assert single(u, "Restart") == "on-failure"
    assert single(u, "RestartPreventExitStatus") == "78"
    assert single(u, "ExecStart") == "/usr/local/bin/pulsed run"
    assert single(u, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert single(u, "WantedBy", "Install") == "default.target"


def test_the_user_unit_asks_nothing_a_user_manager_cannot_give() -> None:
    u = parse_unit(USER_UNIT)
    for key in SYSTEM_ONLY:
        assert values(u, key) == [], key
    # Nothing of root's: no /etc, no /run/pulsed, no /var/lib.
    for _key, value in (*u["Service"], *u["Unit"]):
        assert not re.search(r"(^|[=\s:])/(etc|run|var)/", value), value


def test_the_user_unit_reads_the_users_config_and_secrets_and_hardens_what_it_can() -> None:
    u = parse_unit(USER_UNIT)
    assert values(u, "Environment") == [
        "PYTHONFAULTHANDLER=1",
        "PULSED_CONFIG=%E/pulsed/pulsed.toml",
        "CREDENTIALS_DIRECTORY=%E/pulsed/credentials",
    ]
    # The status file's folder: pulsed's default for a user is $XDG_RUNTIME_DIR/pulsed/.
    assert single(u, "RuntimeDirectory") == "pulsed"
    assert single(u, "UMask") == "0077"
    for key in ("NoNewPrivileges", "RestrictSUIDSGID", "RestrictNamespaces"):
        assert single(u, key) == "yes", key
    assert single(u, "MemoryDenyWriteExecute") == "yes"
    assert single(u, "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert values(u, "SystemCallFilter") == ["@system-service", "~@privileged @resources"]
