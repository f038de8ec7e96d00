"""The one normaliser of a host name: the shop's domain, and the host of every URL pulsed is given.

Pure, and below everything that needs it: the settings' URL validator
(``pulse.api_host``, ``telegram.api_base``), the ``shop.domain`` override and the
domain read from ``config.php`` all go through :func:`normalize_domain`, so a host
is accepted, and written, the same way wherever it comes from. A host that is not
one is a :class:`~pulsed._errors.CollectError` whose message never repeats a
password the URL may carry.
"""

from __future__ import annotations

import ipaddress
import re

import idna

from pulsed._errors import CollectError

# A label: 1 to 63 letters, digits, "-" and "_", not starting or ending with "-".
# One expression for the whole name: a reload reads a domain for every shop.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def normalize_domain(value: str) -> str:
    """The host of a URL or host name: IDNA ASCII, lower-cased, port kept (§1, §2).

    Messages never repeat the userinfo part: a URL may carry a password there.
    """
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if (
        sep
        and scheme
        and scheme[0].isalpha()
        and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
    ):
        text = rest
    authority = text.removeprefix("//")
    for end in "/?#":
        authority = authority.partition(end)[0]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, close, port = hostport[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise CollectError(f"{hostport[:80]!r} is not an IPv6 address in brackets") from None
        if not close or (port and not port.startswith(":")):
            raise CollectError(f"{hostport[:80]!r} is not an IPv6 address in brackets")
        host, port = f"[{host.lower()}]", port[1:]
    else:
        host, _, port = hostport.partition(":")
        host = _host_name(host)
    if not port:
        return host  # "host:" leaves the port to the scheme's default
    if not (port.isascii() and port.isdigit()):
        raise CollectError("the port is not a number")  # not repeated: it may be a password
    if not 1 <= int(port) <= 65535:
        raise CollectError(f"port {port[:20]!r} is not 1..65535")
    return f"{host}:{int(port)}"


def _host_name(host: str) -> str:
    if not host:
        raise CollectError("no host")
    # A fully qualified name written with its root dot ("shop.example.") is a host name
    # too; it is checked without the dot and sent as written.
    rooted = host.endswith(".") and len(host) > 1
    host = host.removesuffix(".") if rooted else host
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise CollectError(f"{host[:80]!r} is not a host name ({exc})") from None
    name = host.lower()
    if len(name) > 253 or not _HOST_NAME.fullmatch(name):
        raise CollectError(f"{host[:80]!r} is not a host name of at most 253 characters")
    return name + ("." if rooted else "")
