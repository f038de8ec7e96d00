"""The one error tree of pulsed.

Every failure that leaves a module of this package is a :class:`PulsedError`.
Errors of httpx, aiogram and the OS are caught at the edge that calls them and
re-raised as one of these with ``raise ... from exc``, so callers never handle a
dependency's exception type. Messages never carry a secret: the edges build them
from status codes, error kinds and redacted text only.
"""

from __future__ import annotations

from typing import Literal, get_args

EX_OK = 0
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78


# Why a file could not be read: what a caller decides on (a missing credential is
# "not set", a planted symlink is a corrupt state), so a typo in a comparison is a
# type error, not a branch that never runs.
FileKind = Literal["missing", "denied", "not_regular", "symlink", "other"]

# The stable word of a failed delivery: DeliveryError.reason, the history in
# state.json and the heartbeat.failed line. pulsed._events.FAILURE_REASONS says
# what each means, for the README's table.
Reason = Literal[
    "connect", "timeout", "network", "tls", "status", "redirect", "protocol", "internal"
]
REASONS: tuple[Reason, ...] = get_args(Reason)


class PulsedError(Exception):
    """Root of every error pulsed raises."""


class ConfigError(PulsedError):
    """A setting that cannot work. ``setting`` names it as ``section.key``."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class FileError(PulsedError):
    """A file could not be read. ``kind``: ``missing``, ``denied``, ``not_regular``,
    ``symlink`` (refused, not followed) or ``other``; the message names the path."""

    def __init__(self, path: str, reason: str, kind: FileKind) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason
        self.kind = kind


class CollectError(PulsedError):
    """One field of the heartbeat could not be had; the heartbeat still goes."""


class IdentityError(PulsedError):
    """The bot identity could not be fetched (``kind``: unauthorized, network, ...)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class StateError(PulsedError):
    """The state file could not be read or written; ``corrupt`` when it was read but is
    not a state pulsed wrote (unparsable, oversized, not a regular file). ``why`` is the
    system's short reason, when there is one (``Permission denied``)."""

    def __init__(self, message: str, *, corrupt: bool = False, why: str = "") -> None:
        super().__init__(message)
        self.corrupt = corrupt
        self.why = why or message


class StateUnwritableError(StateError):
    """``once`` cannot keep a state in ``folder``, so it sends nothing: without the state,
    the next run would not know this heartbeat went, and send again (exit 75)."""

    def __init__(self, folder: str, why: str) -> None:
        super().__init__(f"state folder {folder} cannot be written ({why})", why=why)
        self.folder = folder


class LockHeldError(PulsedError):
    """Another process holds the state directory."""

    def __init__(self, lock_path: str, holder: str) -> None:
        super().__init__(f"state directory is held by {holder} (lock {lock_path})")
        self.lock_path = lock_path
        self.holder = holder


class DeliveryError(PulsedError):
    """A delivery ended without a 2xx.

    ``reason`` is one of :data:`Reason`, a short stable word (``connect``,
    ``timeout``, ``network``, ``tls``, ``status``, ``redirect``, ``protocol``, or
    ``internal`` when the cycle itself failed); ``status`` is the last HTTP status seen,
    ``retry_after`` a server's ``Retry-After`` in seconds when it did not fit the
    budget, ``attempts`` how many requests were made and ``elapsed`` how long
    the delivery took, in seconds.
    """

    def __init__(
        self,
        reason: Reason,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        attempts: int = 0,
        elapsed: float = 0.0,
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.attempts = attempts
        self.elapsed = elapsed


class SubprocessError(PulsedError):
    """A child process (``php``, the identity child) could not be run to completion."""
