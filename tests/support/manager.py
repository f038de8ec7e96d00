"""The service manager's end of ``NOTIFY_SOCKET``, for tests of a real daemon's notifications."""

from __future__ import annotations

import socket


class Manager:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket we read from."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.sock.settimeout(20)
        self.address = address
        self.messages: list[str] = []

    def next(self) -> str:
        message = self.sock.recv(4096).decode()
        self.messages.append(message)
        return message

    def until(self, prefix: str) -> str:
        while not (message := self.next()).startswith(prefix):
            pass
        return message

    def until_match(self, wanted: str, *, containing: str) -> str:
        """The next message that starts with ``wanted`` and contains ``containing``."""
        while not ((message := self.next()).startswith(wanted) and containing in message):
            pass
        return message
