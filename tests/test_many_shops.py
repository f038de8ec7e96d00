"""The pieces that make many shops one daemon: loading them, and the work they share."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from pulsed import _collect, _identity, _shop, _wiring
from pulsed import _state as st
from pulsed._config import Setup, load_setup
from pulsed._errors import ConfigError, IdentityError
from pulsed._files import Read, read_regular
from tests.support.host import Host

TOKENS = [f"{n}00000:key-{n}" for n in range(1, 51)]


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path, "https://pulse.example", ["alpha", "beta"])


def setup_of(host: Host) -> Setup:
    return load_setup({}, host.env)


def test_shops_come_from_tables_with_their_own_state_folders(host: Host) -> None:
    setup = setup_of(host)
    assert [c.name for c in setup.shops] == ["alpha", "beta"]
    assert [c.domain for c in setup.shops] == ["alpha.example", "beta.example"]
    assert [c.state_dir for c in setup.shops] == [
        host.state / "shops" / "alpha",
        host.state / "shops" / "beta",
    ]
    assert all(c.php_binary == str(host.php) for c in setup.shops)  # [shop]'s default
    assert setup.listed and setup.state_dir == host.state


def test_a_shops_d_file_is_a_shop_too(host: Host) -> None:
    (host.etc / "shops.d").mkdir(mode=0o755)
    (host.etc / "shops.d" / "gamma.toml").write_text(f'[shop]\nroot = "{host.add_tree("gamma")}"\n')
    assert [c.name for c in setup_of(host).shops] == ["alpha", "beta", "gamma"]


def test_a_name_in_both_places_is_refused_as_ambiguous(host: Host) -> None:
    (host.etc / "shops.d").mkdir(mode=0o755)
    (host.etc / "shops.d" / "beta.toml").write_text('[shop]\nroot = "/elsewhere"\n')
    setup = setup_of(host)
    assert [c.name for c in setup.shops] == ["alpha"]
    assert any("also a [shops.beta] table" in w for w in setup.warnings)


def test_a_shops_d_folder_others_can_write_is_refused(host: Host) -> None:
    (host.etc / "shops.d").mkdir(mode=0o777)
    (host.etc / "shops.d").chmod(0o777)
    with pytest.raises(ConfigError, match="writable by others"):
        setup_of(host)


@pytest.mark.parametrize(
    ("body", "setting"),
    [
        ('root = "/nonexistent"', "shop.domain"),
        ('domain = "exa mple"', "shop.domain"),
        ("php_binary = 5", "shop.php_binary"),
    ],
)
def test_a_shop_that_cannot_work_is_disabled_naming_the_setting(
    host: Host, body: str, setting: str
) -> None:
    host.write(["alpha"], extra={"bad": body})
    setup = setup_of(host)
    assert [c.name for c in setup.shops] == ["alpha"]
    (off,) = setup.disabled
    assert (off.name, off.error.setting) == ("bad", setting)


def _broken(folder: Path, case: str) -> None:
    """A ``shops.d/bad.toml`` that cannot be read as a shop file, the ``case`` way."""
    path = folder / "bad.toml"
    if case == "malformed":
        path.write_text("[shop\nroot = ")
    elif case == "folder":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "dangling":
        path.symlink_to(folder / "gone.toml")
    elif case == "binary":
        path.write_bytes(b"\xff\xfe[shop]")
    else:
        raise ValueError(case)


@pytest.mark.parametrize("case", ["malformed", "folder", "fifo", "dangling", "binary"])
def test_a_shops_d_file_that_cannot_be_read_disables_its_shop_alone(host: Host, case: str) -> None:
    folder = host.etc / "shops.d"
    folder.mkdir(mode=0o755)
    _broken(folder, case)
    setup = setup_of(host)
    assert [c.name for c in setup.shops] == ["alpha", "beta"]
    (off,) = setup.disabled
    assert (off.name, off.error.setting) == ("bad", "shops.d")
    assert "bad.toml" in str(off.error)


@pytest.mark.parametrize("name", [".#gamma.toml", ".gamma.toml.swp", "gamma.toml~", "notes.txt"])
def test_editor_leftovers_in_shops_d_are_not_shops(host: Host, name: str) -> None:
    folder = host.etc / "shops.d"
    folder.mkdir(mode=0o755)
    (folder / name).symlink_to("user@host.1234")  # as emacs leaves its lock: dangling
    setup = setup_of(host)
    assert [c.name for c in setup.shops] == ["alpha", "beta"]
    assert setup.disabled == () and setup.warnings == ()


def test_a_shops_d_file_others_can_write_still_stops_the_start(host: Host) -> None:
    folder = host.etc / "shops.d"
    folder.mkdir(mode=0o755)
    (folder / "gamma.toml").write_text(f'[shop]\nroot = "{host.add_tree("gamma")}"\n')
    (folder / "gamma.toml").chmod(0o666)
    with pytest.raises(ConfigError, match="writable by others"):
        setup_of(host)


def test_each_shop_names_where_its_secret_came_from(host: Host) -> None:
    host.secret("beta", "beta's-own-secret")
    sources = {c.name: c.sources["pulse.heartbeat_secret"] for c in setup_of(host).shops}
    assert sources == {"alpha": "env", "beta": "credential pulse_heartbeat_secret.beta"}


def test_without_secrets_status_still_learns_every_domain(host: Host) -> None:
    env = {k: v for k, v in host.env.items() if k != "PULSE_HEARTBEAT_SECRET"}
    assert [c.name for c in load_setup({}, env).shops] == []
    setup = load_setup({}, env, secrets=False)
    assert [c.domain for c in setup.shops] == ["alpha.example", "beta.example"]


def test_a_bad_shop_name_is_disabled(host: Host) -> None:
    host.write(["alpha"], extra={'"no way"': 'domain = "x.example"'})
    (off,) = setup_of(host).disabled
    assert "not a shop name" in str(off.error)


def test_a_shops_own_credential_beats_the_shared_secret(host: Host) -> None:
    host.secret("beta", "beta's-own-secret-key")
    secrets = {c.name: c.heartbeat_secret.reveal() for c in setup_of(host).shops}
    assert secrets == {"alpha": host.env["PULSE_HEARTBEAT_SECRET"], "beta": "beta's-own-secret-key"}


def test_a_shops_own_secret_shorter_than_16_bytes_disables_that_shop_only(host: Host) -> None:
    host.secret("beta", "short")
    setup = setup_of(host)
    assert [c.name for c in setup.shops] == ["alpha"]
    (off,) = setup.disabled
    assert off.name == "beta" and off.error.setting == "pulse.heartbeat_secret"
    assert "shorter than 16 bytes" in str(off.error)


def test_a_shared_secret_shorter_than_16_bytes_stops_the_start_naming_it(host: Host) -> None:
    host.secret("alpha", "alpha's-own-secret-key")
    host.env["PULSE_HEARTBEAT_SECRET"] = "e"
    with pytest.raises(ConfigError) as info:
        setup_of(host)
    assert info.value.setting == "pulse.heartbeat_secret"
    assert "shorter than 16 bytes" in str(info.value)


def test_one_shop_variables_are_ignored_with_a_warning_when_shops_are_listed(
    host: Host,
) -> None:
    setup = load_setup({}, {**host.env, "OPENCART_ROOT": "/somewhere"})
    assert all(c.shop_root != Path("/somewhere") for c in setup.shops)
    assert any("shop.root from the env is ignored" in w for w in setup.warnings)


def test_unknown_shop_keys_are_warned_about(host: Host) -> None:
    host.write(["alpha"], extra={"beta": f'root = "{host.add_tree("beta")}"\nrooot = "typo"'})
    assert any("unknown keys of shop 'beta' ignored: rooot" in w for w in setup_of(host).warnings)


def test_without_tables_the_one_shop_is_default_with_its_state_where_it_was(
    tmp_path: Path,
) -> None:
    env = {
        "PULSE_API_HOST": "https://pulse.example",
        "PULSE_HEARTBEAT_SECRET": "s" * 16,
        "PULSED_DOMAIN": "shop.example",
        "PULSED_STATE_DIR": str(tmp_path),
    }
    setup = load_setup({}, env, default_path=tmp_path / "none.toml")
    (only,) = setup.shops
    assert (only.name, only.state_dir, setup.listed) == ("default", tmp_path, False)


def test_select_keeps_the_named_shops_and_refuses_an_unknown_name(host: Host) -> None:
    setup = setup_of(host)
    assert [c.name for c in setup.select(["beta"]).shops] == ["beta"]
    with pytest.raises(ConfigError, match="no shop named 'nope'"):
        setup.select(["nope"])


def test_shops_on_disk_lists_default_and_each_shop_with_a_state(tmp_path: Path) -> None:
    assert st.shops_on_disk(tmp_path) == ["default"]
    st.StateStore(st.shop_state_dir(tmp_path, "b")).save(st.State())
    st.StateStore(st.shop_state_dir(tmp_path, "a")).save(st.State())
    assert st.shops_on_disk(tmp_path) == ["a", "b"]
    st.StateStore(tmp_path).save(st.State())
    assert st.shops_on_disk(tmp_path) == ["default", "a", "b"]


# --- one identity child per round ---------------------------------------------------


class Child:
    """Stands in for the identity child: records each round's tokens."""

    def __init__(self, fail: Iterable[str] = ()) -> None:
        self.rounds: list[list[str]] = []
        self.fail = set(fail)

    async def __call__(
        self, tokens: Sequence[str], api_base: str, timeout: float, env: Mapping[str, str]
    ) -> dict[str, str | IdentityError | None]:
        self.rounds.append(list(tokens))
        await anyio.lowlevel.checkpoint()
        return {
            t: IdentityError("network", "down") if t in self.fail else f"bot_{t[:6]}"
            for t in tokens
        }


@pytest.mark.anyio
async def test_one_round_serves_every_stale_token() -> None:
    child = Child()
    rounds = _identity.Rounds(child, wanted=lambda: TOKENS, clock=lambda: 1e9)
    first = await rounds.identity(TOKENS[0], "https://api", 5.0, {})
    assert first.username == "bot_100000"
    assert len(child.rounds) == 1 and sorted(child.rounds[0]) == sorted(TOKENS)
    for token in TOKENS[1:]:
        await rounds.identity(token, "https://api", 5.0, {})
    assert len(child.rounds) == 1  # the other 49 shops' names came from that round


@pytest.mark.anyio
async def test_shops_asking_together_share_one_round() -> None:
    child = Child()
    rounds = _identity.Rounds(child, clock=lambda: 1e9)
    got: dict[str, str | None] = {}

    async def ask(token: str) -> None:
        got[token] = (await rounds.identity(token, "https://api", 5.0, {})).username

    async with anyio.create_task_group() as tg:
        for token in TOKENS[:8]:
            tg.start_soon(ask, token)
    assert len(got) == 8
    assert len(child.rounds) <= 2  # the first asker's round, and one for all who came after


@pytest.mark.anyio
async def test_a_failed_token_is_not_kept_and_is_asked_again() -> None:
    child = Child(fail=[TOKENS[1]])
    rounds = _identity.Rounds(child, wanted=lambda: TOKENS[:2], clock=lambda: 1e9)
    with pytest.raises(IdentityError, match="network"):
        await rounds.identity(TOKENS[1], "https://api", 5.0, {})
    assert rounds.known(TOKENS[0]) is not None and rounds.known(TOKENS[1]) is None
    child.fail.clear()
    assert (await rounds.identity(TOKENS[1], "https://api", 5.0, {})).username
    assert len(child.rounds) == 2


@pytest.mark.anyio
async def test_a_name_older_than_a_day_is_fetched_again() -> None:
    now = [1e9]
    child = Child()
    rounds = _identity.Rounds(child, clock=lambda: now[0])
    await rounds.identity(TOKENS[0], "https://api", 5.0, {})
    now[0] += _identity.MAX_AGE
    await rounds.identity(TOKENS[0], "https://api", 5.0, {})
    assert len(child.rounds) == 2


# --- php asked once per binary ----------------------------------------------------------


@pytest.mark.anyio
async def test_php_is_asked_once_per_binary_and_again_when_it_changes(tmp_path: Path) -> None:
    php = tmp_path / "php"
    calls = tmp_path / "calls"
    php.write_text(f"#!/bin/sh\necho x >> {calls}\nprintf 8.2.7\n")
    php.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    versions = _collect.PhpVersions()
    for _ in range(5):
        assert await versions.version(str(php), 5.0, env) == "8.2.7"
    assert calls.read_text().count("x") == 1
    php.write_text(f"#!/bin/sh\necho x >> {calls}\nprintf 8.3.10\n")  # an upgrade
    assert await versions.version(str(php), 5.0, env) == "8.3.10"
    assert calls.read_text().count("x") == 2


@pytest.mark.anyio
async def test_a_failed_php_answer_is_not_kept(tmp_path: Path) -> None:
    php = tmp_path / "php"
    php.write_text("#!/bin/sh\nexit 1\n")
    php.chmod(0o755)
    versions = _collect.PhpVersions()
    assert await versions.version(str(php), 5.0, {"PATH": "/usr/bin:/bin"}) is None
    assert await versions.version(str(php), 5.0, {"PATH": "/usr/bin:/bin"}) is None
    assert versions.asked == 2


@pytest.mark.anyio
async def test_each_shop_reads_its_unchanged_files_once(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = setup_of(host)
    monkeypatch.setattr(_collect, "SETTLED_NS", 0)  # the files were written just now
    read: list[Path] = []
    real = read_regular

    def counted(path: Path, limit: int, *, follow: bool = True) -> Read:
        read.append(path)
        return real(path, limit, follow=follow)

    monkeypatch.setattr(_shop, "read_regular", counted)
    shops = _wiring.Shops(writable=False)
    cycles = [shops.open(cfg) for cfg in setup.shops]
    for _ in range(3):
        for cycle in cycles:
            await cycle.build()
    roots = [host.root(cfg.name) for cfg in setup.shops]
    assert sorted(read) == sorted(
        path
        for root in roots
        for path in (root / "index.php", root / "system/library/oc_telegram_shop/composer.json")
    )


def test_a_shop_without_its_secret_names_its_own_credential_and_what_loads_it(
    host: Host, tmp_path: Path
) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    env = {k: v for k, v in host.env.items() if k != "PULSE_HEARTBEAT_SECRET"}
    env["CREDENTIALS_DIRECTORY"] = str(credentials)
    setup = load_setup({}, env)
    off = {d.name: str(d.error) for d in setup.disabled}
    assert "no credential pulse_heartbeat_secret.alpha nor pulse_heartbeat_secret" in off["alpha"]
    assert "systemctl daemon-reload && systemctl restart pulsed" in off["alpha"]
    assert "pulsed add-secrets writes them into /etc/pulsed/credentials" in off["alpha"]
