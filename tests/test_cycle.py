"""One shop's cycle on an injected clock: what it opens, builds, resumes and logs (§4, §5, §7)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from pulsed import _body, _identity
from pulsed import _state as st
from pulsed._config import Config, Secret
from pulsed._cycle import Cycle
from pulsed._delivery import Delivered
from pulsed._errors import DeliveryError, IdentityError, StateUnwritableError
from pulsed._timefmt import compact, rfc3339
from tests.support.loop import HOUR, fixed_facts, loop_config

pytestmark = pytest.mark.anyio
NOW = 1_800_000_000.0
TOKEN = "123456:cycle-test-token"
FACTS = _body.ShopFacts("8.2.7", "1.4.0", "4.0.2.3", None)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


class Asked:
    """A transport that answers 200 and keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, str]]] = []

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        self.sent.append((body, dict(headers)))
        return Delivered(200, 1, 0.1)


def getme(
    username: str, asked: list[tuple[Sequence[str], str, float, dict[str, str]]]
) -> _identity.FetchMany:
    """A fetch of every token's name through no child: each answers ``username``."""

    async def fetch_many(
        tokens: Sequence[str], api_base: str, timeout: float, env: Mapping[str, str]
    ) -> dict[str, str | IdentityError | None]:
        asked.append((tokens, api_base, timeout, dict(env)))
        return dict.fromkeys(tokens, username)

    return fetch_many


def with_token(tmp_path: Path) -> Config:
    return replace(loop_config(tmp_path), bot_token=Secret(TOKEN))


def a_cycle(
    tmp_path: Path,
    state: st.State | None = None,
    *,
    cfg: Config | None = None,
    wall: float = NOW,
    identities: _identity.Rounds | None = None,
) -> Cycle:
    return Cycle(
        cfg or loop_config(tmp_path),
        st.StateStore(tmp_path),
        state or st.State(),
        writable=True,
        environ={},
        wall=lambda: wall,
        rng=random.Random(7),
        identities=identities,
        collect=fixed_facts,
    )


def interrupted(at: float, *, domain: str = "shop.example", secret: str = "s") -> st.State:
    """A state whose delivery of the heartbeat of ``at`` was cut short."""
    beat = _body.heartbeat(domain, None, FACTS, at)
    request = _body.signed(beat, secret, at)
    return st.with_pending(
        st.State(last_success=at - HOUR), request.body, request.at, request.signature
    )


# --- opening ----------------------------------------------------------------------


async def test_an_opened_cycle_builds_with_the_clock_collector_and_identities_given(
    tmp_path: Path,
) -> None:
    asked: list[tuple[Sequence[str], str, float, dict[str, str]]] = []
    cycle = Cycle.open(
        with_token(tmp_path),
        writable=False,
        environ={"LANG": "C"},
        wall=lambda: NOW,
        identities=_identity.Rounds(getme("opened_bot", asked), clock=lambda: NOW),
        collect=fixed_facts,
    )
    beat = _body.decode((await cycle.build()).body)
    assert beat == _body.Heartbeat("shop.example", "opened_bot", FACTS, rfc3339(NOW))
    assert asked[0][3]["LANG"] == "C"


async def test_an_opened_writable_cycle_keeps_what_it_delivers_on_disk(tmp_path: Path) -> None:
    cycle = Cycle.open(loop_config(tmp_path), writable=True, environ={}, wall=lambda: NOW)
    cycle.collect = fixed_facts
    assert await cycle.deliver(await cycle.build(), Asked())
    saved = st.StateStore(tmp_path).read()
    assert saved is not None and saved.last_success == NOW


def test_an_opened_cycle_starts_from_the_state_on_disk(tmp_path: Path) -> None:
    kept = st.State(last_success=NOW - 60, next_due=NOW - 60 + HOUR)
    st.StateStore(tmp_path).save(kept)
    cycle = Cycle.open(loop_config(tmp_path), writable=False, environ={}, wall=lambda: NOW)
    assert cycle.state == replace(kept, domain="shop.example")  # the state names its shop


@pytest.mark.parametrize("writable", [True, False])
def test_an_opened_cycle_without_a_state_file_starts_with_none(
    tmp_path: Path, writable: bool
) -> None:
    cycle = Cycle.open(loop_config(tmp_path), writable=writable, environ={}, wall=lambda: NOW)
    assert cycle.state == st.State(domain="shop.example")


def test_opened_writable_a_state_file_that_cannot_be_parsed_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    cycle = Cycle.open(loop_config(tmp_path), writable=True, environ={}, wall=lambda: NOW)
    assert cycle.state == st.State(domain="shop.example")
    assert [p.name for p in tmp_path.iterdir()] == [f"state.json.corrupt-{compact(NOW)}"]


def test_opened_read_only_a_state_file_that_cannot_be_parsed_counts_as_none_and_stays(
    tmp_path: Path,
) -> None:
    (tmp_path / "state.json").write_text("{not json")
    cycle = Cycle.open(loop_config(tmp_path), writable=False, environ={}, wall=lambda: NOW)
    assert cycle.state == st.State(domain="shop.example")
    assert (tmp_path / "state.json").read_text() == "{not json"


# --- what status shows, and when it is due ------------------------------------------


def test_the_view_is_the_shop_its_state_and_the_schedules_due_time(tmp_path: Path) -> None:
    state = st.State(last_success=NOW - 60, next_due=NOW + 5)
    view = a_cycle(tmp_path, state).view()
    assert (view.name, view.domain, view.state, view.next_due) == (
        "default",
        "shop.example",
        replace(state, domain="shop.example"),
        NOW - 60 + HOUR,
    )


def test_a_shop_is_due_the_moment_its_interval_has_passed(tmp_path: Path) -> None:
    assert a_cycle(tmp_path, st.State(last_success=NOW - HOUR)).is_due()


def test_a_shop_half_a_second_short_of_its_interval_is_not_due(tmp_path: Path) -> None:
    assert not a_cycle(tmp_path, st.State(last_success=NOW - HOUR + 0.5)).is_due()


def test_a_clock_gone_back_is_said_once_with_the_last_success(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cycle = a_cycle(tmp_path, st.State(last_success=NOW + HOUR))
    with caplog.at_level(logging.INFO, logger="pulsed"):
        assert cycle.is_due()
        cycle.due()
    (line,) = events(caplog, "state.clock_future")
    stamp = rfc3339(NOW + HOUR)
    assert line.getMessage() == (
        f"last success {stamp} is in the future: the clock went back; sending now"
    )
    assert line.last_success == stamp  # type: ignore[attr-defined]


def test_a_clock_in_order_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cycle = a_cycle(tmp_path, st.State(last_success=NOW - 60))
    with caplog.at_level(logging.INFO, logger="pulsed"):
        cycle.due()
    assert caplog.records == []


def test_a_reloaded_configuration_keeps_the_state_folder_opened(tmp_path: Path) -> None:
    cycle = a_cycle(tmp_path)
    cycle.reconfigure(loop_config(tmp_path / "elsewhere", interval=60.0))
    assert (cycle.cfg.state_dir, cycle.cfg.interval) == (tmp_path, 60.0)


def test_a_reloaded_configuration_in_the_same_folder_is_taken_as_it_is(tmp_path: Path) -> None:
    cycle = a_cycle(tmp_path)
    reloaded = loop_config(tmp_path, interval=60.0)
    cycle.reconfigure(reloaded)
    assert cycle.cfg is reloaded  # not copied: 2,000 copies were 25 ms of a reload


# --- the bot's identity --------------------------------------------------------------


def test_without_a_token_there_is_no_identity_to_fetch(tmp_path: Path) -> None:
    assert a_cycle(tmp_path).stale_token() is None


def test_a_token_without_a_kept_identity_is_stale(tmp_path: Path) -> None:
    assert a_cycle(tmp_path, cfg=with_token(tmp_path)).stale_token() == TOKEN


def test_a_token_whose_identity_is_fresh_is_not_stale(tmp_path: Path) -> None:
    kept = st.Identity("kept_bot", NOW - 60, _identity.fingerprint(TOKEN))
    cycle = a_cycle(tmp_path, st.State(identity=kept), cfg=with_token(tmp_path))
    assert cycle.stale_token() is None


def test_a_token_whose_identity_is_a_day_old_is_stale(tmp_path: Path) -> None:
    kept = st.Identity("kept_bot", NOW - _identity.MAX_AGE, _identity.fingerprint(TOKEN))
    cycle = a_cycle(tmp_path, st.State(identity=kept), cfg=with_token(tmp_path))
    assert cycle.stale_token() == TOKEN


async def test_a_fetched_identity_names_the_bot_and_is_kept(tmp_path: Path) -> None:
    asked: list[tuple[Sequence[str], str, float, dict[str, str]]] = []
    rounds = _identity.Rounds(getme("fetched_bot", asked), clock=lambda: NOW)
    cycle = a_cycle(tmp_path, cfg=with_token(tmp_path), identities=rounds)
    beat = _body.decode((await cycle.build()).body)
    assert beat is not None and beat.bot_username == "fetched_bot"
    assert cycle.state.identity is not None and cycle.state.identity.username == "fetched_bot"


async def test_the_identity_is_asked_with_the_shops_api_base_timeout_and_child_environment(
    tmp_path: Path,
) -> None:
    asked: list[tuple[Sequence[str], str, float, dict[str, str]]] = []
    cfg = replace(with_token(tmp_path), telegram_api_base="https://tg.example", timeout=7.0)
    cycle = Cycle(
        cfg,
        st.StateStore(tmp_path),
        st.State(),
        writable=False,
        environ={"LANG": "C", "LEAK": TOKEN},
        wall=lambda: NOW,
        identities=_identity.Rounds(getme("bot", asked), clock=lambda: NOW),
        collect=fixed_facts,
    )
    await cycle.build()
    assert asked == [([TOKEN], "https://tg.example", 7.0, {"LANG": "C"})]


async def test_a_fresh_kept_identity_names_the_bot_without_a_fetch(tmp_path: Path) -> None:
    asked: list[tuple[Sequence[str], str, float, dict[str, str]]] = []
    kept = st.Identity("kept_bot", NOW - 60, _identity.fingerprint(TOKEN))
    rounds = _identity.Rounds(getme("fetched_bot", asked), clock=lambda: NOW)
    cycle = a_cycle(tmp_path, st.State(identity=kept), cfg=with_token(tmp_path), identities=rounds)
    beat = _body.decode((await cycle.build()).body)
    assert beat is not None and beat.bot_username == "kept_bot"
    assert asked == []


# --- the facts and the body ------------------------------------------------------------


async def test_the_facts_are_collected_with_the_shops_settings_and_child_environment(
    tmp_path: Path,
) -> None:
    asked: list[tuple[object, ...]] = []

    async def collect(*args: object) -> _body.ShopFacts:
        asked.append(args)
        return FACTS

    cfg = replace(
        loop_config(tmp_path),
        shop_root=tmp_path / "shop",
        composer_json=tmp_path / "composer.json",
        php_binary="/usr/bin/php8.2",
        heartbeat_secret=Secret("collect-test-secret"),
    )
    cycle = Cycle(
        cfg,
        st.StateStore(tmp_path),
        st.State(),
        writable=False,
        environ={"LANG": "C", "LEAK": "collect-test-secret"},
        wall=lambda: NOW,
        collect=collect,
    )
    await cycle.build()
    assert asked == [
        (tmp_path / "shop", tmp_path / "composer.json", "/usr/bin/php8.2", 5.0, {"LANG": "C"})
    ]


async def test_a_built_body_is_the_shops_heartbeat_of_this_whole_second(tmp_path: Path) -> None:
    request = await a_cycle(tmp_path, wall=NOW + 0.75).build()
    assert _body.decode(request.body) == _body.Heartbeat("shop.example", None, FACTS, rfc3339(NOW))
    assert request.at == NOW


async def test_the_transport_is_given_the_requests_body_and_headers(tmp_path: Path) -> None:
    cycle = a_cycle(tmp_path)
    request = await cycle.build()
    transport = Asked()
    await cycle.deliver(request, transport)
    assert transport.sent == [(request.body, dict(request.headers))]


async def test_the_first_success_after_failures_is_due_later_than_one_interval(
    tmp_path: Path,
) -> None:
    state = st.State(last_success=NOW - 3 * HOUR, next_due=NOW, consecutive_failures=2)
    cycle = a_cycle(tmp_path, state)
    await cycle.deliver(await cycle.build(), Asked())
    assert cycle.state.next_due is not None and cycle.state.next_due > NOW + HOUR


class Refused:
    """A transport whose every delivery fails to connect."""

    async def send(self, body: bytes, headers: Mapping[str, str]) -> Delivered:
        raise DeliveryError("connect", "All connection attempts failed", attempts=3)


async def test_a_failed_delivery_is_logged_with_the_receivers_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # During an outage the operator's first question is which receiver: the line says it.
    cfg = replace(loop_config(tmp_path), api_host="https://pulse.example:8443/base")
    cycle = a_cycle(tmp_path, cfg=cfg)
    with caplog.at_level(logging.INFO, logger="pulsed"):
        assert not await cycle.deliver(await cycle.build(), Refused())
    (line,) = events(caplog, "heartbeat.failed")
    assert getattr(line, "host", None) == "pulse.example"
    assert "pulse.example" in line.getMessage()


def unwritable_cycle(tmp_path: Path) -> Cycle:
    (tmp_path / "a-file").write_text("")
    return Cycle(
        loop_config(tmp_path),
        st.StateStore(tmp_path / "a-file" / "state"),
        st.State(),
        writable=True,
        environ={},
        wall=lambda: NOW,
        rng=random.Random(7),
        collect=fixed_facts,
    )


async def test_a_delivery_whose_state_cannot_be_kept_still_goes_for_run(tmp_path: Path) -> None:
    cycle = unwritable_cycle(tmp_path)
    transport = Asked()
    assert await cycle.deliver(await cycle.build(), transport)
    assert len(transport.sent) == 1


async def test_a_delivery_that_must_be_kept_and_cannot_be_is_not_sent(tmp_path: Path) -> None:
    cycle = unwritable_cycle(tmp_path)
    transport = Asked()
    with pytest.raises(StateUnwritableError):
        await cycle.deliver(await cycle.build(), transport, must_keep=True)
    assert transport.sent == []


# --- an interrupted delivery -------------------------------------------------------------


async def test_an_interrupted_body_still_fresh_is_sent_again_as_it_was(tmp_path: Path) -> None:
    state = interrupted(NOW - 30)
    pending = state.pending
    assert pending is not None
    request = await a_cycle(tmp_path, state).prepare()
    assert (request.body, request.at) == (pending.body.encode(), NOW - 30)
    assert request.signature == pending.signature
    assert request.headers["X-MEGAPAY-VERSION"] == "1.4.0"


async def test_an_interrupted_body_sent_again_is_logged_with_its_moment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await a_cycle(tmp_path, interrupted(NOW - 30)).prepare()
    (line,) = events(caplog, "heartbeat.resumed")
    stamp = rfc3339(NOW - 30)
    assert line.getMessage() == f"re-sending the interrupted heartbeat of {stamp}"
    assert line.timestamp == stamp  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            interrupted(NOW - 30, domain="other.example"),
            "dropping an interrupted delivery that is not a heartbeat of shop.example",
        ),
        (
            interrupted(NOW - 30, secret="another secret"),
            "dropping an interrupted delivery that pulsed did not sign with this secret",
        ),
        (
            interrupted(NOW - 600),
            f"a delivery of {rfc3339(NOW - 600)} was interrupted and its outcome is unknown;"
            " sending a fresh one",
        ),
    ],
    ids=["foreign", "unsigned", "stale"],
)
async def test_an_interrupted_body_that_may_not_go_again_is_dropped_with_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, state: st.State, message: str
) -> None:
    pending = state.pending
    assert pending is not None
    cycle = a_cycle(tmp_path, state)
    with caplog.at_level(logging.INFO, logger="pulsed"):
        request = await cycle.prepare()
    (line,) = events(caplog, "heartbeat.interrupted")
    assert (line.levelno, line.getMessage()) == (logging.WARNING, message)
    assert line.timestamp == rfc3339(pending.timestamp)  # type: ignore[attr-defined]
    assert cycle.state.pending is None
    assert json.loads(request.body)["timestamp"] == rfc3339(NOW)


# --- a crash --------------------------------------------------------------------------


async def test_a_crashed_cycle_is_logged_as_an_error_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    boom = RuntimeError("boom")
    with caplog.at_level(logging.INFO, logger="pulsed"):
        await a_cycle(tmp_path).crashed(boom)
    (line,) = events(caplog, "heartbeat.error")
    assert (line.levelno, line.getMessage()) == (
        logging.ERROR,
        "heartbeat cycle failed unexpectedly",
    )
    assert line.exc_info is not None and line.exc_info[1] is boom


async def test_a_crashed_cycle_records_the_kind_of_exception_as_its_error(tmp_path: Path) -> None:
    cycle = a_cycle(tmp_path)
    await cycle.crashed(RuntimeError("boom"))
    assert cycle.state.last_error == "internal: RuntimeError"
