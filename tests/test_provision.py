"""``pulsed add-shop`` and ``pulsed add-secrets``: what they write, and what they refuse."""

from __future__ import annotations

import io
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from devtools.receiver import Receiver
from pulsed import _cli, _provision
from pulsed._config import DEFAULT_CONFIG_PATH, load_setup
from pulsed._errors import ConfigError, FileError
from pulsed._settings import BY_KEY, Secret
from pulsed._toml import tomllib
from tests.support.host import Host
from tests.support.process import SECRET, Pulsed, run_pulsed

OWN = "alpha-own-secret-0001"
HB = BY_KEY["pulse.heartbeat_secret"].parse
SHOPS = _provision.Shops(frozenset({"alpha", "beta"}), {"alpha.example": "alpha"})


def parse(text: str) -> tuple[list[tuple[int, str, str]], list[str]]:
    entries, problems = _provision.parse_lines(text, SHOPS, HB, "pulse_heartbeat_secret")
    return [(e.line, e.shop, e.value.reveal()) for e in entries], problems


# --- the lines --------------------------------------------------------------------


def test_lines_name_a_shop_by_name_or_domain_and_skip_blanks_and_comments() -> None:
    text = f"# shop secret\n\nalpha\t{OWN}\r\n  ALPHA.example {OWN}x\n"
    entries, problems = parse(text.replace("ALPHA.example", "beta"))
    assert entries == [(3, "alpha", OWN), (4, "beta", OWN + "x")]
    assert problems == []
    assert parse(f"Alpha.Example {OWN}\n")[0] == [(1, "alpha", OWN)]


def test_a_secret_keeps_its_inner_spaces() -> None:
    assert parse(f"alpha {OWN} and more\n")[0] == [(1, "alpha", f"{OWN} and more")]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("alpha", "line 1: expected <shop or domain> <secret>"),
        (f"gamma {OWN}", "line 1: the first word is neither a configured shop nor its domain"),
        (f"alpha.example:8443 {OWN}", "line 1: the first word is neither"),
        ("alpha short", "line 1: pulse_heartbeat_secret.alpha: is shorter than 16 bytes"),
        (f"alpha {OWN} ", "line 1: pulse_heartbeat_secret.alpha: has leading or trailing"),
    ],
)
def test_a_line_that_cannot_be_taken_is_named_by_its_number(line: str, problem: str) -> None:
    entries, problems = parse(line + "\n")
    assert entries == []
    (only,) = problems
    assert only.startswith(problem), only


def test_a_line_written_the_wrong_way_round_never_shows_its_secret() -> None:
    _, problems = parse(f"{OWN} alpha\n")
    assert problems == ["line 1: the first word is neither a configured shop nor its domain"]


def test_a_shop_given_twice_is_refused_on_the_second_line() -> None:
    _, problems = parse(f"alpha {OWN}\nalpha.example {OWN}\n")
    assert problems == ["line 2: shop alpha was given on line 1 already"]


@pytest.mark.parametrize("text", ["", "\n# only a comment\n\n"])
def test_no_line_at_all_is_a_problem(text: str) -> None:
    assert parse(text) == ([], ["no line of <shop or domain> <secret> was given"])


# --- the plan ---------------------------------------------------------------------


def test_each_entry_is_written_kept_or_refused_by_what_its_file_holds() -> None:
    entries = [
        _provision.Entry(n, shop, Secret(OWN))
        for n, shop in enumerate(["new", "same", "other", "odd"], 1)
    ]
    existing: Mapping[str, bytes | FileError | None] = {
        "c.same": OWN.encode(),
        "c.other": b"another-secret-0001",
        "c.odd": FileError("/x/c.odd", "a symlink", "symlink"),
    }
    actions, problems = _provision.plan(entries, existing, "c", replace=False)
    assert [(e.shop, a) for e, a in actions] == [("new", "write"), ("same", "unchanged")]
    assert problems == [
        "line 3: c.other exists with another value; kept (--replace replaces it)",
        "line 4: /x/c.odd: a symlink; not touched",
    ]
    actions, problems = _provision.plan(entries, existing, "c", replace=True)
    assert [a for _, a in actions] == ["write", "unchanged", "replace"]
    assert problems == ["line 4: /x/c.odd: a symlink; not touched"]


# --- add-secrets ------------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path, "https://pulse.example", ["alpha", "beta"])


def add(host: Host, text: str, **kw: object) -> list[str]:
    folder = kw.pop("folder", host.credentials)
    return _provision.add_secrets({}, text, folder=folder, environ=host.env, **kw)  # type: ignore[arg-type]


def test_add_secrets_writes_each_credential_private_where_the_daemon_reads_it(
    host: Host, tmp_path: Path
) -> None:
    folder = tmp_path / "creds"  # made 0700 when missing
    report = add(host, f"alpha {OWN}\nbeta.example beta-own-secret-01\n", folder=folder)
    assert report == [
        f"wrote    {folder}/pulse_heartbeat_secret.alpha",
        f"wrote    {folder}/pulse_heartbeat_secret.beta",
    ]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (folder / "pulse_heartbeat_secret.alpha").read_bytes() == OWN.encode()
    setup = load_setup({}, {**host.env, "CREDENTIALS_DIRECTORY": str(folder)})
    alpha = next(c for c in setup.shops if c.name == "alpha")
    assert alpha.heartbeat_secret.reveal() == OWN
    assert alpha.sources["pulse.heartbeat_secret"] == "credential pulse_heartbeat_secret.alpha"


def test_one_bad_line_writes_nothing_and_names_every_line_refused(
    host: Host, tmp_path: Path
) -> None:
    folder = tmp_path / "creds"
    with pytest.raises(ConfigError) as refused:
        add(host, f"alpha {OWN}\nbeta short\ngamma {OWN}\n", folder=folder)
    assert str(refused.value) == (
        "secrets: nothing written; 2 refused: line 2: pulse_heartbeat_secret.beta: is shorter "
        "than 16 bytes; an HMAC key that short is guessable (ask AcmeShop Pulse for the "
        "shop's full key); line 3: the first word is neither a configured shop nor its domain"
    )
    assert OWN not in str(refused.value)
    assert not folder.exists()  # not even the folder


def test_a_credential_that_holds_another_value_is_kept_unless_replace_is_given(
    host: Host,
) -> None:
    old = host.credentials / "pulse_heartbeat_secret.alpha"
    old.write_text("alpha-old-secret-0001")
    with pytest.raises(ConfigError, match=r"line 1: pulse_heartbeat_secret\.alpha exists with"):
        add(host, f"alpha {OWN}\nbeta beta-own-secret-01\n")
    assert old.read_text() == "alpha-old-secret-0001"
    assert not (host.credentials / "pulse_heartbeat_secret.beta").exists()
    assert add(host, f"alpha {OWN}\n", replace=True) == [f"replaced {old}"]
    assert old.read_text() == OWN
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert add(host, f"alpha {OWN}\n") == [f"unchanged {old}"]


def test_a_symlink_at_a_credentials_name_is_never_written_through(
    host: Host, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    (host.credentials / "pulse_heartbeat_secret.alpha").symlink_to(target)
    for replace in (False, True):
        with pytest.raises(ConfigError, match="a symlink; not touched"):
            add(host, f"alpha {OWN}\n", replace=replace)
    assert not target.exists()


def test_bot_tokens_are_checked_as_tokens_and_written_under_their_own_name(host: Host) -> None:
    with pytest.raises(ConfigError, match=r"line 1: telegram_bot_token.alpha: is malformed"):
        add(host, f"alpha {OWN}\n", credential="telegram_bot_token")
    assert add(host, "alpha 123:abc\n", credential="telegram_bot_token") == [
        f"wrote    {host.credentials}/telegram_bot_token.alpha"
    ]


def test_a_credentials_folder_others_may_write_is_refused(host: Host) -> None:
    host.credentials.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by others"):
        add(host, f"alpha {OWN}\n")
    assert list(host.credentials.iterdir()) == []


# --- add-shop ---------------------------------------------------------------------


def add_shop(host: Host, name: str, root: Path, **kw: object) -> list[str]:
    kw.setdefault("folder", host.credentials)
    return _provision.add_shop({}, name, root, environ=host.env, **kw)  # type: ignore[arg-type]


def test_add_shop_writes_the_shop_file_and_its_secret_and_the_shop_loads(host: Host) -> None:
    root = host.add_tree("gamma")
    report = add_shop(host, "gamma", root, secret=OWN)
    shop_file = host.etc / "shops.d" / "gamma.toml"
    credential = host.credentials / "pulse_heartbeat_secret.gamma"
    assert report == [f"wrote    {credential}", f"wrote    {shop_file}"]
    assert stat.S_IMODE(shop_file.stat().st_mode) == 0o644
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    gamma = next(c for c in load_setup({}, host.env).shops if c.name == "gamma")
    assert (gamma.domain, gamma.heartbeat_secret.reveal()) == ("gamma.example", OWN)


def test_add_shop_without_a_secret_writes_only_the_shop_file(host: Host) -> None:
    add_shop(host, "gamma", host.add_tree("gamma"), domain="shop.gamma.example")
    assert list(host.credentials.iterdir()) == []
    gamma = next(c for c in load_setup({}, host.env).shops if c.name == "gamma")
    assert (gamma.domain, gamma.heartbeat_secret.reveal()) == ("shop.gamma.example", SECRET)


@pytest.mark.parametrize(
    ("name", "where", "why"),
    [
        ("a" * 33, "gamma", "is not a shop name"),
        ("alpha", "gamma", "shop alpha is already configured"),
        ("gamma", "alpha", "is already shop alpha's"),  # alpha's root
        ("gamma", "nowhere", "shop.domain: not set, and"),
    ],
)
def test_add_shop_refuses_and_writes_nothing(host: Host, name: str, where: str, why: str) -> None:
    root = host.root(where) if where != "gamma" else host.add_tree("gamma")
    before = host.config.read_text()
    with pytest.raises(ConfigError, match=why):
        add_shop(host, name, root, secret=OWN)
    assert not (host.etc / "shops.d").exists()
    assert list(host.credentials.iterdir()) == []
    assert host.config.read_text() == before


def test_add_shop_refuses_a_domain_another_shop_has(host: Host) -> None:
    root = host.add_tree("gamma")
    with pytest.raises(ConfigError, match=r"alpha\.example is already shop alpha's"):
        add_shop(host, "gamma", root, domain="alpha.example")


def test_add_shop_refuses_a_secret_that_cannot_work_and_writes_nothing(host: Host) -> None:
    with pytest.raises(ConfigError, match=r"pulse_heartbeat_secret\.gamma: is shorter"):
        add_shop(host, "gamma", host.add_tree("gamma"), secret="short")
    assert not (host.etc / "shops.d").exists()
    assert list(host.credentials.iterdir()) == []


def test_add_shop_keeps_a_credential_that_holds_another_value(host: Host) -> None:
    old = host.credentials / "pulse_heartbeat_secret.gamma"
    old.write_text("gamma-old-secret-0001")
    with pytest.raises(ConfigError, match="exists with another value; kept, nothing written"):
        add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN)
    assert old.read_text() == "gamma-old-secret-0001"
    assert not (host.etc / "shops.d").exists()


def test_add_shop_needs_the_configuration_file_shops_d_sits_beside(host: Host) -> None:
    host.config.unlink()
    with pytest.raises(ConfigError, match=r"pulsed.toml is not there; shops.d/ is read only"):
        add_shop(host, "gamma", host.add_tree("gamma"))


def test_adding_to_the_one_shop_configuration_lists_its_shop_as_default_too(
    tmp_path: Path,
) -> None:
    host = Host(tmp_path, "https://pulse.example", [])
    first = host.add_tree("first")
    host.config.write_text(f'[shop]\nroot = "{first}"\ndomain = "Shop.First.example"\n')
    report = add_shop(host, "gamma", host.add_tree("gamma"))
    shops_d = host.etc / "shops.d"
    assert report == [
        f"wrote    {shops_d}/default.toml",
        f"wrote    {shops_d}/gamma.toml",
        f"note     default: {_provision.CARRIED}",
    ]
    setup = load_setup({}, host.env)
    shops = {c.name: c for c in setup.shops}
    assert sorted(shops) == ["default", "gamma"]
    # Under its old name the shop keeps its state, and the domain its configuration set.
    assert shops["default"].state_dir == host.state
    assert shops["default"].domain == "shop.first.example"
    with pytest.raises(ConfigError, match="shop default is already configured"):
        add_shop(host, "default", host.add_tree("delta"))


def test_adding_to_a_one_shop_configuration_without_a_root_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    # The one shop set by its composer.json and domain: no shops.d file could carry it,
    # and listing another shop would drop it without a word.
    host = Host(tmp_path, "https://pulse.example", [])
    first = host.add_tree("first")
    host.config.write_text(
        f'[shop]\ncomposer_json = "{first}/system/library/oc_telegram_shop/composer.json"\n'
        'domain = "first.example"\n'
    )
    assert [c.name for c in load_setup({}, host.env).shops] == ["default"]
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN)
    assert str(refused.value) == (
        "add-shop: the one shop configured in [shop] has no root to list it by as "
        "shops.d/default.toml; list it there first (its composer_json and domain under "
        "[shop]), then add this one; nothing written"
    )
    assert not (host.etc / "shops.d").exists()
    assert list(host.credentials.iterdir()) == []


def test_add_shop_knows_a_disabled_shop_by_its_root(host: Host) -> None:
    # beta's config.php lost its domain: disabled, and still the owner of its folder.
    (host.root("beta") / "config.php").write_text("<?php\n// the define lost in an edit\n")
    with pytest.raises(ConfigError, match=r"is already shop beta's; nothing written"):
        add_shop(host, "gamma", host.root("beta"), domain="gamma.example")
    assert not (host.etc / "shops.d").exists()


def test_add_shop_knows_a_shops_domain_even_when_no_secret_is_set(host: Host) -> None:
    # Provisioning runs before any secret exists: a shop without one is still alpha,
    # with its domain, not a disabled shop whose domain is free to take.
    env = {k: v for k, v in host.env.items() if k != "PULSE_HEARTBEAT_SECRET"}
    with pytest.raises(ConfigError, match=r"alpha\.example is already shop alpha's"):
        _provision.add_shop(
            {}, "gamma", host.add_tree("gamma"), domain="alpha.example", environ=env
        )


def test_what_to_run_next_fits_who_ran_it_and_what_changed() -> None:
    steps = _provision.next_steps
    assert steps(changed=True, credential=True, as_root=True) == _provision.RESTART
    assert steps(changed=True, credential=False, as_root=True) == _provision.RELOAD
    assert "daemon-reload" in _provision.RESTART and "reload pulsed" in _provision.RELOAD
    # Not root: the user unit (or cron) reads the credentials folder as it is.
    for credential in (True, False):
        said = steps(changed=True, credential=credential, as_root=False)
        assert said == _provision.AS_USER and "sudo" not in said
        assert "systemctl --user reload pulsed" in said and "cron" in said
    for as_root in (True, False):
        assert steps(changed=False, credential=True, as_root=as_root) == (
            "nothing changed: nothing to restart\n"
        )


# --- the commands, as an operator types them ----------------------------------------


def run_main(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], argv: list[str], stdin: str = ""
) -> int:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    return _cli.main(argv)


def test_add_secrets_from_stdin_prints_what_systemd_needs(
    host: Host, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["add-secrets", "--credentials-dir", str(host.credentials)]
    assert run_main(monkeypatch, host.env, argv, f"alpha {OWN}\n") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote    {host.credentials}/pulse_heartbeat_secret.alpha\nnext:")
    assert "  sudo systemctl daemon-reload\n  sudo systemctl restart pulsed" in out
    assert run_main(monkeypatch, host.env, argv, f"alpha {OWN}\n") == 0
    assert capsys.readouterr().out.endswith("nothing changed: nothing to restart\n")


def test_a_refused_line_is_exit_78_and_the_secret_is_printed_nowhere(
    host: Host, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = ["add-secrets", "--credentials-dir", str(host.credentials), "-"]
    assert run_main(monkeypatch, host.env, argv, f"{OWN} alpha\n") == 78
    out, err = capfd.readouterr()
    assert "line 1: the first word is neither" in err and '"config.invalid"' in err
    assert OWN not in out + err


def test_add_shop_reads_its_secret_from_a_file_or_one_line_of_stdin(
    host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{OWN}\nignored second line\n")
    base = ["--credentials-dir", str(host.credentials)]
    argv = ["add-shop", "gamma", "--root", str(host.add_tree("gamma")), *base]
    assert run_main(monkeypatch, host.env, [*argv, "--secret-file", str(secret_file)]) == 0
    argv = ["add-shop", "delta", "--root", str(host.add_tree("delta")), *base]
    assert run_main(monkeypatch, host.env, [*argv, "--secret-stdin"], "delta-own-secret-1\r\n") == 0
    assert (host.credentials / "pulse_heartbeat_secret.gamma").read_text() == OWN
    assert (host.credentials / "pulse_heartbeat_secret.delta").read_text() == "delta-own-secret-1"


def test_a_secret_on_add_shops_command_line_is_refused(host: Host) -> None:
    root = str(host.add_tree("gamma"))
    code, out, err = run_pulsed(["add-shop", "gamma", "--root", root, "--secret", OWN], host.env)
    assert code == 2
    assert OWN not in out + err
    assert not (host.etc / "shops.d").exists()


def test_a_shop_added_with_its_secret_signs_with_it(tmp_path: Path) -> None:
    with Receiver(SECRET, secrets={"gamma.example": OWN}) as receiver:
        host = Host(tmp_path, receiver.url, ["alpha"])
        add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN)
        code, _, err = run_pulsed(["once"], host.env)
        assert code == 0, err
        assert sorted(b["domain"] for b in receiver.accepted) == ["alpha.example", "gamma.example"]
        assert receiver.rejected == []


def test_a_restart_after_add_shop_sends_the_new_shop_only(tmp_path: Path) -> None:
    """The sequence add-shop prints: the restart that loads the credential sends the
    new shop's first heartbeat and nothing early for the others."""
    with Receiver(SECRET, secrets={"gamma.example": OWN}) as receiver:
        host = Host(tmp_path, receiver.url, ["alpha", "beta"])
        daemon = Pulsed(["run"], host.env)
        daemon.wait_for("heartbeat.sent", count=2)
        assert daemon.stop() == 0
        add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN)
        daemon = Pulsed(["run"], host.env)
        (sent,) = daemon.wait_for("heartbeat.sent")
        (started,) = daemon.named("daemon.started")
        assert daemon.stop() == 0
        assert (sent["shop"], started["shops"]) == ("gamma", 3)
        assert [b["domain"] for b in receiver.accepted][2:] == ["gamma.example"]
        assert receiver.rejected == []


# --- every refusal word for word, and the readers of secrets ------------------------


@pytest.mark.parametrize(
    ("name", "where", "message"),
    [
        ("a" * 33, "gamma", f"add-shop: '{'a' * 33}' is not a shop name (1-32 of A-Z a-z 0-9 _ -)"),
        ("alpha", "gamma", "add-shop: shop alpha is already configured; nothing written"),
        ("gamma", "alpha", "add-shop: {root} is already shop alpha's; nothing written"),
    ],
)
def test_add_shop_refusals_word_for_word(host: Host, name: str, where: str, message: str) -> None:
    root = host.root(where) if where != "gamma" else host.add_tree("gamma")
    with pytest.raises(ConfigError) as refused:
        add_shop(host, name, root)
    assert str(refused.value) == message.format(root=root)
    assert refused.value.setting == "add-shop"


def test_add_shop_refuses_a_domain_another_shop_has_word_for_word(host: Host) -> None:
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "gamma", host.add_tree("gamma"), domain="alpha.example")
    assert str(refused.value) == "add-shop: alpha.example is already shop alpha's; nothing written"


def test_add_shop_keeps_a_shop_file_that_appears_meanwhile_and_says_so(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    shops_d = host.etc / "shops.d"
    real = _provision.write_new_files

    def raced(folder: Path, files: list[tuple[str, bytes]], mode: int, setting: str) -> object:
        assert setting == "add-shop"
        (folder / "gamma.toml").write_text("raced")
        return real(folder, files, mode, setting)

    shops_d.mkdir()
    monkeypatch.setattr(_provision, "write_new_files", raced)
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "gamma", host.add_tree("gamma"))
    assert (
        str(refused.value)
        == f"add-shop: {shops_d}/gamma.toml exists; kept, nothing written over it"
    )
    assert (shops_d / "gamma.toml").read_text() == "raced"


def test_the_one_shop_whose_domain_comes_from_config_php_is_listed_without_one(
    tmp_path: Path,
) -> None:
    host = Host(tmp_path, "https://pulse.example", [])
    first = host.add_tree("first")
    host.config.write_text(f'[shop]\nroot = "{first}"\n')
    add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN)
    text = (host.etc / "shops.d" / "default.toml").read_text()
    assert text == f'# {_provision.CARRIED}\n[shop]\nroot = "{first}"\n'
    assert (host.credentials / "pulse_heartbeat_secret.gamma").read_text() == OWN


def test_problems_of_lines_and_of_files_are_listed_in_line_order(host: Host) -> None:
    (host.credentials / "pulse_heartbeat_secret.beta").write_text("beta-old-secret-00001")
    text = f"gamma {OWN}\nbeta {OWN}\nalpha\n"
    with pytest.raises(ConfigError) as refused:
        add(host, text)
    assert str(refused.value) == (
        "secrets: nothing written; 3 refused: "
        "line 1: the first word is neither a configured shop nor its domain; "
        "line 2: pulse_heartbeat_secret.beta exists with another value; kept (--replace "
        "replaces it); line 3: expected <shop or domain> <secret>"
    )


def test_a_credentials_folder_that_cannot_be_made_is_refused_naming_it(
    host: Host, tmp_path: Path
) -> None:
    folder = tmp_path / "no" / "such"
    with pytest.raises(ConfigError) as refused:
        add(host, f"alpha {OWN}\n", folder=folder)
    assert str(refused.value) == f"secrets: {folder}: cannot be created (No such file or directory)"


def test_known_without_a_working_shared_setting_is_the_names_of_the_files(
    host: Host,
) -> None:
    (host.etc / "shops.d").mkdir()
    (host.etc / "shops.d" / "gamma.toml").write_text("[shop]\n")
    (host.etc / "shops.d" / ".delta.toml").write_text("[shop]\n")  # an editor's, no shop
    env = {k: v for k, v in host.env.items() if k != "PULSE_API_HOST"}
    have = _provision.known({}, env)
    assert have == _provision.Known(frozenset({"alpha", "beta", "gamma"}))
    host.config.unlink()
    assert _provision.known({}, env) == _provision.Known()
    assert _provision.known({"config": str(host.config)}, env) == _provision.Known()


def test_known_names_the_working_shops_by_root_and_domain(host: Host) -> None:
    have = _provision.known({}, host.env)
    assert have.names == {"alpha", "beta"} and have.listed and have.single is None
    assert have.roots == {host.root(n).resolve(): n for n in ("alpha", "beta")}
    assert have.domains == {"alpha.example": "alpha", "beta.example": "beta"}


def test_a_shop_file_holds_any_root_as_one_toml_string(tmp_path: Path) -> None:

    root = tmp_path / 'we"ird\\ na\tme\u2028\x1b\U0010ffff'
    text = _provision.shop_file(root, "d.example", "a note").decode()
    assert text.startswith("# a note\n[shop]\n")
    assert tomllib.loads(text) == {"shop": {"root": str(root), "domain": "d.example"}}


@pytest.mark.parametrize("name", ["-", None])
def test_add_secrets_reads_stdin_without_a_file_or_with_a_dash(
    name: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"alpha s\n")))
    assert _provision.read_lines(name) == "alpha s\n"


def test_add_secrets_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    path.write_bytes(b"alpha \xc3\xa9\n")
    assert _provision.read_lines(str(path)) == "alpha \u00e9\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"x" * ((1 << 20) + 1), "secrets: {path}: larger than 1 MiB"),
        (b"alpha \xff\n", "secrets: not UTF-8"),
    ],
)
def test_lines_too_long_or_not_utf8_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "secrets"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as refused:
        _provision.read_lines(str(path))
    assert str(refused.value) == message.format(path=path)


def test_stdin_past_a_mebibyte_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"x" * ((1 << 20) + 1)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with pytest.raises(ConfigError) as refused:
        _provision.read_lines("-")
    assert str(refused.value) == "secrets: stdin: larger than 1 MiB"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data[:-1])))
    assert len(_provision.read_lines("-")) == 1 << 20


def test_a_missing_file_of_lines_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _provision.read_lines(str(tmp_path / "nope"))
    assert str(refused.value) == f"secrets: {tmp_path}/nope: not found; cannot be read"


def test_a_secret_is_the_first_line_of_its_file_or_of_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"first-line-secret\r\nsecond\n")
    assert _provision.read_secret(str(path), stdin=False) == "first-line-secret"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"typed-secret\nmore\n")))
    assert _provision.read_secret(None, stdin=True) == "typed-secret"
    assert _provision.read_secret(None, stdin=False) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "--secret-file: {path}: not found; cannot be read"),
        (b"\xff\n", "--secret-file: not UTF-8"),
    ],
)
def test_a_secret_file_that_cannot_be_read_is_refused(
    tmp_path: Path, data: bytes | None, message: str
) -> None:
    path = tmp_path / "secret"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ConfigError) as refused:
        _provision.read_secret(str(path), stdin=False)
    assert str(refused.value) == message.format(path=path)


def test_add_shop_without_a_configuration_file_says_which_and_how_word_for_word(
    host: Host,
) -> None:
    host.config.unlink()
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "gamma", host.add_tree("gamma"))
    assert str(refused.value) == (
        f"config: {host.config} is not there; shops.d/ is read only beside a configuration"
        f" file (first: sudo cp {host.config}.example {host.config}, and set pulse.api_host)"
    )


def test_add_shop_with_the_secret_already_there_writes_the_shop_and_says_unchanged(
    host: Host,
) -> None:
    credential = host.credentials / "pulse_heartbeat_secret.gamma"
    credential.write_text(OWN)
    assert add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN) == [
        f"unchanged {credential}",
        f"wrote    {host.etc}/shops.d/gamma.toml",
    ]


def test_add_shop_refuses_another_secret_where_one_is_word_for_word(host: Host) -> None:
    credential = host.credentials / "pulse_heartbeat_secret.gamma"
    credential.write_text("gamma-old-secret-0001")
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN)
    assert str(refused.value) == (
        f"add-shop: {credential} exists with another value; kept, nothing written"
    )


def test_known_needs_no_secret_to_know_the_shops_roots(host: Host) -> None:
    env = {k: v for k, v in host.env.items() if k != "PULSE_HEARTBEAT_SECRET"}
    have = _provision.known({}, env)
    assert have.roots == {host.root(n).resolve(): n for n in ("alpha", "beta")}


# --- what each refusal names, and the edges of the readers ---------------------------


def test_add_secrets_needs_no_shared_secret_to_write_the_shops_own(host: Host) -> None:
    """Each shop's own secret is what stands in for the shared one: it is never asked for,
    and a shop without one yet is still found by its domain."""
    env = {k: v for k, v in host.env.items() if k != "PULSE_HEARTBEAT_SECRET"}
    text = f"alpha.example {OWN}\n"
    report = _provision.add_secrets({}, text, folder=host.credentials, environ=env)
    assert report == [f"wrote    {host.credentials}/pulse_heartbeat_secret.alpha"]


def test_every_problem_is_listed_in_the_order_of_its_line(host: Host) -> None:
    lines = [
        f"gamma {OWN}",
        "beta short",
        "alpha",
        f"alpha {OWN}",
        f"alpha.example {OWN}",
        *["# more below"] * 3,
        f"delta {OWN}",
        f"{OWN} beta",
    ]
    with pytest.raises(ConfigError) as refused:
        add(host, "\n".join(lines) + "\n")
    neither = "the first word is neither a configured shop nor its domain"
    assert str(refused.value) == (
        f"secrets: nothing written; 6 refused: line 1: {neither}; "
        "line 2: pulse_heartbeat_secret.beta: is shorter than 16 bytes; an HMAC key that "
        "short is guessable (ask AcmeShop Pulse for the shop's full key); "
        "line 3: expected <shop or domain> <secret>; "
        "line 5: shop alpha was given on line 4 already; "
        f"line 9: {neither}; line 10: {neither}"
    )


def test_no_line_at_all_writes_nothing_and_says_so(host: Host) -> None:
    with pytest.raises(ConfigError) as refused:
        add(host, "# nothing yet\n")
    assert str(refused.value) == (
        "secrets: nothing written; 1 refused: no line of <shop or domain> <secret> was given"
    )


def test_a_credential_that_appears_while_writing_does_not_stop_the_next_one(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _provision.open_folder

    def raced(folder: Path, mode: int, setting: str) -> int:
        (folder / "pulse_heartbeat_secret.alpha").write_text("raced")
        return real(folder, mode, setting)

    monkeypatch.setattr(_provision, "open_folder", raced)
    report = add(host, f"alpha {OWN}\nbeta beta-own-secret-01\n")
    assert report == [
        f"kept     {host.credentials}/pulse_heartbeat_secret.alpha: it appeared meanwhile;"
        " not replaced",
        f"wrote    {host.credentials}/pulse_heartbeat_secret.beta",
    ]
    assert (host.credentials / "pulse_heartbeat_secret.alpha").read_text() == "raced"


def test_a_folder_others_may_write_is_refused_by_the_command_that_met_it(host: Host) -> None:
    def why(path: Path) -> str:
        return f"{path} is writable by others (mode 0777); chmod go-w {path}"

    host.credentials.chmod(0o777)
    with pytest.raises(ConfigError) as refused:
        add(host, f"alpha {OWN}\n")
    assert str(refused.value) == f"secrets: {why(host.credentials)}"
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "gamma", host.add_tree("gamma"), secret=OWN)
    assert str(refused.value) == f"add-shop: {why(host.credentials)}"
    host.credentials.chmod(0o700)
    shops_d = host.etc / "shops.d"
    shops_d.mkdir()
    shops_d.chmod(0o777)
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "delta", host.add_tree("delta"))
    assert str(refused.value) == f"add-shop: {why(shops_d)}"


def test_add_shop_writes_the_shop_file_with_its_keys_alone(host: Host) -> None:
    root = host.add_tree("gamma")
    add_shop(host, "gamma", root, domain="shop.gamma.example")
    assert (host.etc / "shops.d" / "gamma.toml").read_text() == (
        f'[shop]\nroot = "{root}"\ndomain = "shop.gamma.example"\n'
    )


def test_a_long_name_refused_is_shown_cut(host: Host) -> None:
    with pytest.raises(ConfigError) as refused:
        add_shop(host, "n" * 100, host.add_tree("gamma"))
    assert str(refused.value) == (
        f"add-shop: '{'n' * 59} is not a shop name (1-32 of A-Z a-z 0-9 _ -)"
    )


NO_DEFAULT_CONFIG = pytest.mark.skipif(
    DEFAULT_CONFIG_PATH.exists(),
    reason="this host has a configuration file at the default path",
)


@NO_DEFAULT_CONFIG
def test_with_no_configuration_file_anywhere_nothing_is_known() -> None:
    assert _provision.known({}, {}) == _provision.Known()


@NO_DEFAULT_CONFIG
def test_add_shop_with_no_configuration_file_anywhere_names_the_default_one(
    host: Host,
) -> None:
    env = {k: v for k, v in host.env.items() if k != "PULSED_CONFIG"}
    with pytest.raises(ConfigError) as refused:
        _provision.add_shop({}, "gamma", host.add_tree("gamma"), environ=env)
    where = DEFAULT_CONFIG_PATH
    assert str(refused.value) == (
        f"config: {where} is not there; shops.d/ is read only beside a configuration"
        f" file (first: sudo cp {where}.example {where}, and set pulse.api_host)"
    )


def test_a_secret_keeps_its_inner_spaces_and_stdin_is_read_one_mebibyte_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"a secret with spaces\nsecond\n")
    assert _provision.read_secret(str(path), stdin=False) == "a secret with spaces"
    endless = b"x" * (3 << 20)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(endless)))
    assert len(_provision.read_secret(None, stdin=True) or "") == 1 << 20


def test_lines_from_stdin_are_read_one_byte_past_a_mebibyte_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"x" * (3 << 20)))
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(ConfigError, match="stdin: larger than 1 MiB"):
        _provision.read_lines(None)
    assert stdin.buffer.tell() == (1 << 20) + 1
