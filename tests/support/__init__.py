"""What the tests, ``make soak`` and ``make bench`` share; pytest collects nothing here.

- :mod:`.process` runs ``python -m pulsed`` as a real process and reads its JSON log
  lines; :class:`~.process.Shop` lays out a shop with a stub ``php``.
- :mod:`.lab` is the reliability rig: local servers, shops, and the secrets scan when
  a scenario ends.
- :mod:`.scan` is that scan: what must never show up, where it looked, the totals.
- :mod:`.loop` holds the stand-ins for driving the supervisor loop on an injected clock.
- :mod:`.wait` waits for what no log line announces.
- :mod:`.figures` holds shop states with known figures for the status and metrics tests.
- :mod:`.config` loads the one shop of a one-shop configuration.
- :mod:`.scenarios` are the reliability scenarios themselves, run small by the tests
  and large by ``make soak``.
"""
