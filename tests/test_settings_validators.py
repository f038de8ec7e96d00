"""Each validator of a setting, called directly: what it returns and the exact line it refuses with.

The line is what an operator reads at start (``pulsed: <setting>: <reason>``), so
the setting's name and the reason are held word for word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pulsed import _settings
from pulsed._errors import ConfigError
from pulsed._settings import SETTINGS, Parser, Secret

NAME = "section.key"


def refusal(parse: Parser, value: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(NAME, value)
    assert caught.value.setting == NAME
    return caught.value.reason


# --- refused, word for word -------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "value", "reason"),
    [
        (_settings.text, 5, "must be a string, not int"),
        (_settings.nonblank, None, "must be a string, not NoneType"),
        (_settings.nonblank, " \t", "is empty"),
        (_settings.timeout, [1], "must be a number of seconds, not list"),
        (_settings.interval, True, "must be a number of seconds, not bool"),
        (_settings.interval, "soon", "must be a number of seconds, not 'soon'"),
        (_settings.base_url, 443, "must be a string, not int"),
        (_settings.base_url, "https://pulse.example/?a=1", "must not carry a query or fragment"),
        (_settings.base_url, "https://pulse.example/#top", "must not carry a query or fragment"),
        (_settings.base_url, "https://u@pulse.example/", "must not carry a user or password"),
        (_settings.base_url, "https://:pw@pulse.example/", "must not carry a user or password"),
        (_settings.secret, " padded-secret-value", "has leading or trailing whitespace"),
        (_settings.secret, 7, "must be a string, not int"),
        (_settings.bot_token, "123456:abc:def ghi", "is malformed (expected <bot id>:<key>)"),
        (_settings.bot_token, "123456:", "is malformed (expected <bot id>:<key>)"),
        (_settings.bot_token, "123456", "is malformed (expected <bot id>:<key>)"),
        (_settings.bot_token, "bot:abcdef", "is malformed (expected <bot id>:<key>)"),
        (_settings.bot_token, 12, "must be a string, not int"),
        (_settings.path, 3, "must be a string, not int"),
        (_settings.metrics_path, 3, "must be a string, not int"),
        (_settings.log_level, 3, "must be a string, not int"),
        (
            _settings.heartbeat_secret,
            "fifteen-bytes!!",
            "is shorter than 16 bytes; an HMAC key that short is guessable "
            "(ask AcmeShop Pulse for the shop's full key)",
        ),
        (
            _settings.metrics_path,
            "/run/pulsed/metrics.txt",
            "must end in .prom (node_exporter's textfile collector reads only *.prom), "
            "not '/run/pulsed/metrics.txt'",
        ),
    ],
)
def test_a_refused_value_names_the_setting_and_why(parse: Parser, value: Any, reason: str) -> None:
    assert refusal(parse, value) == reason


def test_a_port_out_of_range_is_not_a_url() -> None:
    assert refusal(_settings.base_url, "https://pulse.example:99999/") == (
        "'https://pulse.example:99999/' is not a URL (Port out of range 0-65535)"
    )


def test_a_host_after_the_userinfo_is_the_one_checked() -> None:
    # The part after "@" is the host; a bad one there is refused as a bad URL.
    assert "is not a URL" in refusal(_settings.base_url, "https://user@bad_host!/")
    # A user name is not a host name: it is refused for being there, not for its spelling.
    assert refusal(_settings.base_url, "https://us!er@pulse.example/") == (
        "must not carry a user or password"
    )


# --- the edges of the interval ----------------------------------------------------


@pytest.mark.parametrize("value", [1, "1", 1.0, _settings.MAX_INTERVAL])
def test_the_interval_takes_both_ends_of_its_range(value: float | str) -> None:
    assert _settings.interval(NAME, value) == float(value)


@pytest.mark.parametrize("value", [0.999, _settings.MAX_INTERVAL * 1.0001, "inf", "nan"])
def test_an_interval_outside_its_range_says_the_whole_range(value: float | str) -> None:
    assert refusal(_settings.interval, value) == (
        f"must be a finite number of seconds from 1 to {_settings.MAX_INTERVAL:.0f} (10 years), "
        f"not {value!r:.40}"
    )


# --- accepted ------------------------------------------------------------------------


def test_a_url_loses_its_trailing_slashes_and_nothing_else() -> None:
    assert _settings.base_url(NAME, " https://pulse.example/api// ") == "https://pulse.example/api"
    assert _settings.base_url(NAME, "https://pulse.example/X/") == "https://pulse.example/X"


def test_a_timeout_may_be_under_a_second() -> None:
    assert _settings.timeout(NAME, "0.5") == 0.5


def test_a_token_id_is_the_part_before_the_first_colon() -> None:
    # A key may hold a colon; the id may not.
    token = _settings.bot_token(NAME, "123456:ab:cd")
    assert token.reveal() == "123456:ab:cd"


# --- Secret ------------------------------------------------------------------------


def test_a_secret_prints_as_redacted() -> None:
    assert repr(Secret("s3cr3t-value")) == "Secret(<redacted>)"
    assert str(Secret("s3cr3t-value")) == "Secret(<redacted>)"


def test_secrets_are_equal_by_value_and_hash_with_it() -> None:
    assert Secret("a-value") == Secret("a-value")
    assert Secret("a-value") != Secret("b-value")
    assert Secret("a-value") != "a-value"
    assert len({Secret("a-value"), Secret("a-value"), Secret("b-value")}) == 2
    assert hash(Secret("a-value")) == hash(("Secret", "a-value"))


# --- where a missing setting may be given -------------------------------------------------


def test_a_setting_with_a_credential_names_it_first() -> None:
    (setting,) = [s for s in SETTINGS if s.key == "pulse.heartbeat_secret"]
    assert setting.sources_hint() == (
        "credential pulse_heartbeat_secret, PULSE_HEARTBEAT_SECRET or [pulse] heartbeat_secret"
    )


def test_a_setting_without_a_credential_names_its_variable_and_table() -> None:
    (setting,) = [s for s in SETTINGS if s.key == "pulse.api_host"]
    assert setting.sources_hint() == "PULSE_API_HOST or [pulse] api_host"


def test_paths_are_paths() -> None:
    assert _settings.path(NAME, "/etc/pulsed") == Path("/etc/pulsed")
