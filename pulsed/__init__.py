"""pulsed: one process sends the AcmeShop Pulse heartbeat of one shop or many, once an interval.

The public surface is small: :mod:`pulsed.verify` for receivers, the ``pulsed``
command (``pulsed._cli:main``), and :class:`PulsedError`, the root of every error
the package raises.

Modules import downward only. At the bottom, ``_errors``, ``_timefmt``, ``_redact``
and ``_toml`` import nothing of pulsed. Above them, the declarations (``_events``,
``_settings``), the pure helper ``_settings`` needs (``_hostname``) and the file
and process edges (``_files``, ``_proc``) import only from that floor and each
other; the core, the other edges and the commands sit higher.
``tests/test_layers.py`` holds the floors and refuses an import cycle.
"""

from pulsed._errors import PulsedError
from pulsed._version import __version__

__all__ = ["PulsedError", "__version__"]
