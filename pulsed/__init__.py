"""pulsed: sends the AcmeShop Pulse heartbeat of one shop, once an interval.

The public surface is small: :mod:`pulsed.verify` for receivers, the ``pulsed``
command (``pulsed._cli:main``), and :class:`PulsedError`, the root of every error
the package raises.
"""

from pulsed._errors import PulsedError
from pulsed._version import __version__

__all__ = ["PulsedError", "__version__"]
