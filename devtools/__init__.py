"""Local stand-ins for the servers pulsed talks to, for the test-suite and ``make run``.

Not part of the shipped package: :mod:`devtools.faultserver` (an HTTP/1.1 server
that misbehaves on purpose), :mod:`devtools.fake_telegram` (the Bot API's
``getMe``) and :mod:`devtools.receiver` (a heartbeat receiver that verifies
signatures).
"""
