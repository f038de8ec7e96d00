"""One shop's configuration, as the one-shop tests of loading want it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pulsed._config import DEFAULT_CONFIG_PATH, Config, load_setup


def load_one(
    flags: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    default_path: Path = DEFAULT_CONFIG_PATH,
) -> Config:
    """The only shop of a one-shop setup, or the ConfigError that disabled it."""
    setup = load_setup(flags, environ, default_path=default_path)
    if setup.disabled:
        raise setup.disabled[0].error
    (cfg,) = setup.shops
    return cfg
