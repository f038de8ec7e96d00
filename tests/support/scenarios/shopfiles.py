"""Hostile shop files through the daemon (contract §1, §2), and the composer parser under
hypothesis.

``index.php``, ``config.php`` and the module's ``composer.json`` are each made missing,
unreadable (mode 000, for a process without CAP_DAC_OVERRIDE), empty, binary, 100 MB
(sparse, the real text at its top), a symlink loop, or a FIFO, and ``pulsed once``
runs against the shop:

- ``index.php`` / ``composer.json``: the heartbeat is still sent, the field is
  ``null`` (or, for the huge file, read from its first MiB) with one
  ``collect.unavailable`` warning naming it, and no ``X-MEGAPAY-VERSION`` header when
  the module version is ``null``;
- ``config.php``: without a domain the start is refused with exit 78 and one
  ``config.invalid`` line naming ``shop.domain`` — unless ``shop.domain`` is set.

The define() parser's properties live in ``tests/test_phpdefine.py``; the composer
parser's are here. Both read ``PULSED_HYPOTHESIS_EXAMPLES`` (``make soak``: 10000).
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.lab import Lab

HUGE = 100 * 2**20


# Without these two capabilities root obeys file modes like anyone else.
NO_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def _missing(path: Path) -> None:
    path.unlink()


def _unreadable(path: Path) -> None:
    path.chmod(0)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _binary(path: Path) -> None:
    rng = random.Random(path.name)
    path.write_bytes(bytes(rng.randrange(256) for _ in range(4096)) + b"\0\xff\xfe")


def _huge(path: Path) -> None:
    with path.open("r+b") as fh:  # the real text first, then a 100 MB hole
        fh.truncate(HUGE)


def _symlink_loop(path: Path) -> None:
    path.unlink()
    loop = path.with_name(path.name + ".loop")
    path.symlink_to(loop.name)
    loop.symlink_to(path.name)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


KINDS: dict[str, Callable[[Path], None]] = {
    "missing": _missing,
    "unreadable": _unreadable,
    "empty": _empty,
    "binary": _binary,
    "100MB": _huge,
    "symlink-loop": _symlink_loop,
    "fifo": _fifo,
}


@functools.cache
def _can_drop_dac() -> bool:
    if shutil.which("setpriv") is None:
        return False
    tried = subprocess.run([*NO_DAC, "true"], capture_output=True, check=False)
    return tried.returncode == 0


def _prefix(kind: str) -> tuple[str, ...]:
    if kind == "unreadable" and os.geteuid() == 0:
        if not _can_drop_dac():
            pytest.skip("root reads a mode-000 file, and setpriv cannot drop that here")
        return NO_DAC
    return ()


def check_versions_file(lab: Lab, kind: str) -> dict[str, Any]:
    """``index.php`` and composer.json both hostile: nulls and warnings, the heartbeat goes."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"files-{kind}")
    rig.seed()
    for path in (rig.root / "index.php", rig.composer):
        KINDS[kind](path)
    result = rig.run("once", prefix=_prefix(kind))
    assert result.code == 0, result.err
    assert result.elapsed < 15, "a hostile file must not stall the heartbeat"
    (beat,) = receiver.unique_accepted
    (request,) = receiver.server.requests
    warned = {w["field"]: w["reason"] for w in result.named("collect.unavailable")}
    assert len(warned) == len(result.named("collect.unavailable")), "one warning per field"
    if kind == "100MB":  # read up to the cap: the defines sit at the top
        assert (beat["ecommerce_version"], beat["ecommerce_core_version"]) == (
            "3.0.3.8",
            "ocStore 3.0.3.8",
        )
        assert "ecommerce_version" not in warned
    else:
        assert beat["ecommerce_version"] is None and beat["ecommerce_core_version"] is None
        assert "ecommerce_version" in warned
    # JSON followed by a hole of NUL bytes is not JSON any more.
    assert beat["module_version"] is None and "module_version" in warned
    assert "x-megapay-version" not in request.headers
    assert beat["php_version"] == "8.2.7" and beat["domain"] == "demo-shop.example"
    return {
        "code": result.code,
        "module_version": beat["module_version"],
        "warned_fields": sorted(warned),
        "elapsed_s": round(result.elapsed, 2),
        "warnings": len(warned),
    }


def check_config_php(lab: Lab, kind: str) -> dict[str, Any]:
    """``config.php`` hostile: no domain, exit 78 in one line — or fine with shop.domain."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"config-php-{kind}")
    rig.seed()
    KINDS[kind](rig.root / "config.php")
    result = rig.run("once", prefix=_prefix(kind))
    if kind == "100MB":
        assert result.code == 0, result.err
        assert receiver.unique_accepted[0]["domain"] == "demo-shop.example"
        return {"code": result.code, "elapsed_s": round(result.elapsed, 2)}
    assert result.code == 78, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    (invalid,) = result.events
    assert invalid["event"] == "config.invalid" and invalid["setting"] == "shop.domain"
    assert "config.php" in invalid["message"]
    assert receiver.server.requests == []
    refused = {
        "code": result.code,
        "stderr_lines": len(result.err.strip().splitlines()),
        "setting": invalid["setting"],
        "elapsed_s": round(result.elapsed, 2),
    }
    if kind != "missing":
        return refused
    # With the domain set, config.php is not needed at all.
    result = rig.run("once", env={"PULSED_DOMAIN": "Shop.Example:8443"}, prefix=_prefix(kind))
    assert result.code == 0, result.err
    assert receiver.unique_accepted[0]["domain"] == "shop.example:8443"
    return {**refused, "elapsed_s": round(result.elapsed, 2), "code_with_domain": result.code}
