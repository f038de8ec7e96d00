"""When the supervisor writes the status and metrics files (contract §11): at start and
at a reload at once, after cycles once for every cycle that ends within a window of the
first, and never while nothing changed. On an injected clock that moves only when the
test moves it, with shops whose deliveries wait for the test, and files that note what
each write holds."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from pulsed import _state as st
from pulsed._supervisor import (
    PUBLISH_LATEST,
    PUBLISH_WINDOW,
    Reloaded,
    Supervisor,
    publish_window,
)
from tests.support.loop import START, Recorded
from tests.support.manual import Held, Manual, Notes, config, shop

pytestmark = pytest.mark.anyio
HOUR = 3600.0


def looped(
    tmp_path: Path,
    names: tuple[str, ...],
    clock: Manual,
    *,
    reload: Reloaded | None = None,
) -> tuple[Supervisor, Recorded, Held, Notes]:
    files, sender, notes = Recorded(), Held(*names), Notes()
    sup = Supervisor(
        [shop(tmp_path, name) for name in names],
        sender,
        notes,
        reload_config=lambda: reload,
        files=files,
        wait=clock.wait,
        monotonic=clock.monotonic,
    )
    return sup, files, sender, notes


def sent(*names: str, unsent: tuple[str, ...] = ()) -> list[tuple[str, None, int]]:
    return sorted([(n, None, 1) for n in names] + [(n, None, 0) for n in unsent])


async def test_two_cycles_within_the_window_share_one_write(tmp_path: Path) -> None:
    clock = Manual()
    sup, files, sender, notes = looped(tmp_path, ("a", "b"), clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["a"].wait()
            await sender.sending["b"].wait()
            assert files.writes == [sent(unsent=("a", "b"))]  # at start
            sender.release["a"].set()
            await clock.until_asleep(PUBLISH_WINDOW)  # a ended: its window runs
            clock.advance(PUBLISH_WINDOW / 2)
            sender.release["b"].set()
            await anyio.wait_all_tasks_blocked()  # b ended too, within the window
            assert len(files.writes) == 1
            clock.advance(PUBLISH_WINDOW / 2)
            await files.written.wait()
            await anyio.wait_all_tasks_blocked()
            assert files.writes[1:] == [sent("a", "b")]  # one write holding both
            # STATUS= after the files: once it tells of a change, they hold it.
            assert notes.messages[-1].startswith("STATUS=2 shops: 2 ok; next ")
            sup.request_stop()
    assert len(files.writes) == 2  # nothing left to write at the stop


async def test_a_cycle_alone_is_written_once_its_window_ends(tmp_path: Path) -> None:
    clock = Manual()
    sup, files, sender, notes = looped(tmp_path, ("a",), clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            sender.release["a"].set()
            await clock.until_asleep(PUBLISH_WINDOW)
            assert notes.messages[-1] == "STATUS=no heartbeat yet; next now"
            clock.advance(PUBLISH_WINDOW / 2)
            await anyio.wait_all_tasks_blocked()
            assert len(files.writes) == 1
            clock.advance(PUBLISH_WINDOW / 2)
            await files.written.wait()
            await anyio.wait_all_tasks_blocked()
            assert files.writes[1:] == [sent("a")]
            assert notes.messages[-1].startswith("STATUS=last heartbeat ")
            sup.request_stop()


async def test_nothing_changed_is_no_timer_and_no_write(tmp_path: Path) -> None:
    clock = Manual()
    rested = st.State(last_success=START, next_due=START + HOUR)
    files = Recorded()
    sup = Supervisor(
        [shop(tmp_path, "a", rested)],
        Held("a"),
        Notes(),
        reload_config=lambda: None,
        files=files,
        wait=clock.wait,
        monotonic=clock.monotonic,
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await anyio.wait_all_tasks_blocked()
            clock.advance(10 * PUBLISH_LATEST)
            await anyio.wait_all_tasks_blocked()
            # The shop's own sleep until it is due, and nothing for the files.
            assert clock.asked == [HOUR]
            sup.request_stop()
    assert files.writes == [[("a", None, 0)]]  # at start, and not again at the stop


async def test_shops_due_together_are_written_once_the_last_of_them_ends(tmp_path: Path) -> None:
    clock = Manual()
    sup, files, sender, _ = looped(tmp_path, ("a", "b"), clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["b"].wait()
            sender.release["a"].set()
            await clock.until_asleep(PUBLISH_WINDOW)
            clock.advance(PUBLISH_WINDOW)
            await clock.until_asleep(PUBLISH_LATEST - PUBLISH_WINDOW)  # b still sends
            assert len(files.writes) == 1
            sender.release["b"].set()
            await files.written.wait()
            await anyio.wait_all_tasks_blocked()
            assert files.writes[1:] == [sent("a", "b")]
            assert clock.now == PUBLISH_WINDOW  # when b ended, not later
            sup.request_stop()


async def test_a_burst_is_written_at_the_latest_while_it_goes_on(tmp_path: Path) -> None:
    clock = Manual()
    sup, files, sender, _ = looped(tmp_path, ("a", "b"), clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["b"].wait()
            sender.release["a"].set()
            await clock.until_asleep(PUBLISH_WINDOW)
            clock.advance(PUBLISH_WINDOW)
            await clock.until_asleep(PUBLISH_LATEST - PUBLISH_WINDOW)
            clock.advance(PUBLISH_LATEST - PUBLISH_WINDOW - 0.5)
            await anyio.wait_all_tasks_blocked()
            assert len(files.writes) == 1
            clock.advance(0.5)
            await files.written.wait()
            assert files.writes[1:] == [sent("a", unsent=("b",))]  # b still sends
            sender.release["b"].set()
            await clock.until_asleep(PUBLISH_WINDOW)  # b's own change, a window of its own
            clock.advance(PUBLISH_WINDOW)
            await files.written.wait()
            assert files.writes[2:] == [sent("a", "b")]
            sup.request_stop()


async def test_a_reload_writes_at_once_and_the_window_then_writes_nothing(
    tmp_path: Path,
) -> None:
    clock = Manual()
    kept = Reloaded([config(tmp_path, "a"), config(tmp_path, "b")])
    sup, files, sender, _ = looped(tmp_path, ("a", "b"), clock, reload=kept)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["b"].wait()
            sender.release["a"].set()
            await clock.until_asleep(PUBLISH_WINDOW)
            sup.request_reload()
            await files.written.wait()  # at once, though b still sends
            assert files.writes[1:] == [sent("a", unsent=("b",))]
            clock.advance(PUBLISH_WINDOW)
            await anyio.wait_all_tasks_blocked()
            assert len(files.writes) == 2  # the reload wrote what the window held
            sup.request_stop()
            sender.release["b"].set()


async def test_a_shop_a_reload_removes_while_it_sends_stays_out_of_every_listing(
    tmp_path: Path,
) -> None:
    clock = Manual()
    only_a = Reloaded([config(tmp_path, "a")])
    sup, files, sender, notes = looped(tmp_path, ("a", "b"), clock, reload=only_a)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["b"].wait()
            sender.release["a"].set()
            await clock.until_asleep(PUBLISH_WINDOW)
            sup.request_reload()
            await files.written.wait()
            assert files.writes[1:] == [sent("a")]
            sender.release["b"].set()  # its delivery finishes; its shop is gone
            await anyio.wait_all_tasks_blocked()
            clock.advance(PUBLISH_LATEST)
            await anyio.wait_all_tasks_blocked()
            assert files.writes[1:] == [sent("a")]
            assert notes.messages[-1].startswith("STATUS=last heartbeat ")  # a's own line
            sup.request_stop()
    assert files.writes[1:] == [sent("a")]


async def test_a_stop_writes_what_the_window_held_before_it_says_stopping(
    tmp_path: Path,
) -> None:
    clock = Manual()
    sup, files, sender, notes = looped(tmp_path, ("a",), clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            sender.release["a"].set()
            await clock.until_asleep(PUBLISH_WINDOW)
            sup.request_stop()
    assert files.writes[1:] == [sent("a")]
    assert notes.messages[-2:] == [
        notes.messages[-2],
        "STOPPING=1",
    ] and notes.messages[-2].startswith("STATUS=last heartbeat ")


async def test_a_write_that_takes_long_widens_the_next_window(tmp_path: Path) -> None:
    clock = Manual()
    sup, files, sender, _ = looped(tmp_path, ("a",), clock)
    recorded = files.write

    def slow() -> bool:
        clock.now += 0.003  # three milliseconds on the loop's clock
        return recorded()

    files.write = slow  # type: ignore[method-assign]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            sender.release["a"].set()
            await clock.until_asleep(publish_window(0.003))  # three seconds, not one
            clock.advance(PUBLISH_WINDOW)
            await anyio.wait_all_tasks_blocked()
            assert len(files.writes) == 1
            clock.advance(publish_window(0.003) - PUBLISH_WINDOW)
            await files.written.wait()
            assert files.writes[1:] == [sent("a")]
            sup.request_stop()


@pytest.mark.parametrize(
    ("cost", "window"),
    [(0.0, PUBLISH_WINDOW), (0.001, 1.0), (0.0025, 2.5), (0.005, 5.0), (0.02, PUBLISH_LATEST)],
)
def test_the_window_is_a_thousand_times_a_write_from_a_second_to_the_latest(
    cost: float, window: float
) -> None:
    assert publish_window(cost) == pytest.approx(window)


async def test_without_files_status_follows_the_last_of_the_shops_due_together(
    tmp_path: Path,
) -> None:
    clock = Manual()
    only_a = Reloaded([config(tmp_path, "a")])
    sender, notes = Held("a", "b"), Notes()
    sup = Supervisor(
        [shop(tmp_path, "a"), shop(tmp_path, "b")],
        sender,
        notes,
        reload_config=lambda: only_a,
        wait=clock.wait,
        monotonic=clock.monotonic,
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["a"].wait()
            await sender.sending["b"].wait()
            sup.request_reload()  # b goes while it sends
            await anyio.wait_all_tasks_blocked()
            assert notes.messages[-2:] == ["READY=1", "STATUS=no heartbeat yet; next now"]
            sender.release["a"].set()
            await anyio.wait_all_tasks_blocked()
            said = len(notes.messages)  # b still sends: nothing yet
            sender.release["b"].set()
            await anyio.wait_all_tasks_blocked()
            assert notes.messages[said - 1].startswith("STATUS=no heartbeat yet")
            assert [m[:22] for m in notes.messages[said:]] == ["STATUS=last heartbeat "]
            sup.request_stop()
    assert set(clock.asked) == {HOUR}  # the shops' sleeps; no timer without files


async def test_after_a_long_window_the_shops_due_together_still_get_the_rest_of_the_latest(
    tmp_path: Path,
) -> None:
    clock = Manual()
    sup, files, sender, _ = looped(tmp_path, ("a", "b"), clock)
    recorded = files.write

    def slow() -> bool:
        clock.now += 0.0045  # a window of 4.5 s follows, half a second short of the latest
        return recorded()

    files.write = slow  # type: ignore[method-assign]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            await sender.sending["b"].wait()
            sender.release["a"].set()
            await clock.until_asleep(publish_window(0.0045))
            clock.advance(publish_window(0.0045))
            await anyio.wait_all_tasks_blocked()
            assert len(files.writes) == 1  # b still sends, and there is time left
            sender.release["b"].set()
            await files.written.wait()
            assert files.writes[1:] == [sent("a", "b")]
            sup.request_stop()
