"""Stand-ins for the supervisor loop's inputs, shared by the tests that drive it on an
injected clock: a minimal valid configuration and a collector that returns fixed facts."""

from __future__ import annotations

from pathlib import Path

from pulsed._collect import ShopFacts
from pulsed._config import Config, Secret

HOUR = 3600.0


async def fixed_facts(*_: object) -> ShopFacts:
    return ShopFacts("8.2.7", "1.4.0", "4.0.2.3", None)


def loop_config(state_dir: Path, interval: float = HOUR, name: str = "default") -> Config:
    return Config(
        name=name,
        api_host="https://pulse.example",
        heartbeat_secret=Secret("s"),
        timeout=5.0,
        api_key=None,
        bot_token=None,
        telegram_api_base="https://api.telegram.org",
        shop_root=None,
        composer_json=None,
        domain="shop.example",
        php_binary="php",
        state_dir=state_dir,
        interval=interval,
        log_level="info",
        config_file=None,
    )
