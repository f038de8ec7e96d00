"""``make run``: the daemon in the foreground against a local receiver and the example shop.

Starts, all on 127.0.0.1: the demo receiver (verifies each signature and prints
what it accepts), a stand-in Telegram Bot API for ``getMe``, and ``pulsed run``
with the bundled shop in ``examples/shop`` and a fresh state folder, so the first
signed heartbeat is accepted within seconds. Ctrl-C stops all of it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.fake_telegram import FakeTelegram  # noqa: E402 -- needs the repo on sys.path
from devtools.receiver import Receiver  # noqa: E402

DEMO_TOKEN = "123456:demo-token-not-real"  # noqa: S105 -- accepted only by the local stand-in
INTERVAL = os.environ.get("PULSED_INTERVAL", "30")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pulsed-demo-"))
    creds = work / "credentials"
    creds.mkdir(mode=0o700)
    secret = secrets.token_urlsafe(24)
    (creds / "pulse_heartbeat_secret").write_text(secret + "\n")
    (creds / "telegram_bot_token").write_text(DEMO_TOKEN + "\n")
    with (
        Receiver(secret, out=sys.stdout) as receiver,
        FakeTelegram(username="demo_shop_bot", valid_token=DEMO_TOKEN) as telegram,
    ):
        env = dict(os.environ)
        env.update(
            PULSE_API_HOST=receiver.url,
            CREDENTIALS_DIRECTORY=str(creds),
            TELEGRAM_API_BASE=telegram.url,
            OPENCART_ROOT=str(REPO / "examples" / "shop"),
            PULSED_STATE_DIR=str(work / "state"),
            PULSED_INTERVAL=INTERVAL,
        )
        print(
            f"receiver on {receiver.url}/heartbeat, Bot API stand-in on {telegram.url}\n"
            f"shop {REPO / 'examples' / 'shop'}, state {work / 'state'}, "
            f"a heartbeat every {INTERVAL} s. Ctrl-C stops everything.\n",
            flush=True,
        )
        daemon = subprocess.Popen([sys.executable, "-m", "pulsed", "run"], env=env, cwd=REPO)
        try:
            return daemon.wait()
        except KeyboardInterrupt:
            # The terminal's Ctrl-C reached the daemon too; it stops within 3 s.
            try:
                return daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.send_signal(signal.SIGTERM)
                return daemon.wait()
        finally:
            print(f"\ndemo stopped; its files are in {work}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
