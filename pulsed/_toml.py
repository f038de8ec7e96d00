"""The TOML reader: the standard library's ``tomllib`` from Python 3.11 on, ``tomli`` on 3.10.

``tomllib`` is ``tomli`` taken into the standard library, so both read a file the same
way and raise the same ``TOMLDecodeError``; importing it from here keeps that choice in
one place. ``tomli`` is a dependency only on 3.10 (an environment marker in the lock).
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

__all__ = ["tomllib"]
