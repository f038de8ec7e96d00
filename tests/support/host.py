"""A host of several shops for one daemon: shop trees, a config file, credentials.

:class:`Host` lays out, under one folder, a copy of ``examples/shop`` per shop (each
with its own domain, ``<name>.example``), one php stub, a ``pulsed.toml`` listing
them as ``[shops.<name>]`` tables, a credentials folder, and the environment that
runs ``pulsed`` on it. Tests change the config file and send SIGHUP.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulsed import _state as st
from tests.support.process import PHP_STUB, REPO, SECRET

SHOP_CONFIG = """<?php
define('HTTP_SERVER', 'http://{domain}/');
define('HTTPS_SERVER', 'https://{domain}/');
"""


class Host:
    def __init__(self, home: Path, api_host: str, names: Sequence[str]) -> None:
        self.home = home
        self.php = home / "bin" / "php"
        self.php.parent.mkdir(parents=True)
        self.php.write_text(PHP_STUB.format(version="8.2.7"))
        self.php.chmod(0o755)
        self.state = home / "state"
        self.etc = home / "etc"
        self.etc.mkdir(mode=0o755)
        self.credentials = home / "credentials"
        self.credentials.mkdir(mode=0o700)
        self.config = self.etc / "pulsed.toml"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO),
            "PULSE_API_HOST": api_host,
            "PULSE_HEARTBEAT_SECRET": SECRET,
            "PULSED_STATE_DIR": str(self.state),
            "PULSED_CONFIG": str(self.config),
            "CREDENTIALS_DIRECTORY": str(self.credentials),
        }
        self.names: list[str] = []
        self.write(names)

    @staticmethod
    def domain(name: str) -> str:
        return f"{name}.example"

    def root(self, name: str) -> Path:
        return self.home / "shops" / name

    def add_tree(self, name: str) -> Path:
        root = self.root(name)
        if not root.exists():
            shutil.copytree(REPO / "examples" / "shop", root)
            (root / "config.php").write_text(SHOP_CONFIG.format(domain=self.domain(name)))
        return root

    def write(self, names: Sequence[str], extra: Mapping[str, str] | None = None) -> None:
        """The config file lists ``names`` (plus raw ``extra`` tables by name)."""
        self.names = list(names)
        tables = [f'[shop]\nphp_binary = "{self.php}"\n']
        for name in names:
            tables.append(f'[shops.{name}]\nroot = "{self.add_tree(name)}"\n')
        for name, body in (extra or {}).items():
            tables.append(f"[shops.{name}]\n{body}\n")
        self.config.write_text("\n".join(tables))
        self.config.chmod(0o600)

    def secret(self, name: str, value: str) -> None:
        """A shop's own heartbeat secret, as systemd's LoadCredential= hands it over."""
        path = self.credentials / f"pulse_heartbeat_secret.{name}"
        path.write_text(value + "\n")
        path.chmod(0o600)

    def state_of(self, name: str) -> dict[str, Any] | None:
        path = st.shop_state_dir(self.state, name) / st.STATE_FILE
        if not path.exists():
            return None
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
