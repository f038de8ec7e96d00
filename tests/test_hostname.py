"""The one host-name normaliser: the shop's domain and the receiver's and Telegram's hosts."""

from __future__ import annotations

import pytest

from pulsed._errors import CollectError
from pulsed._hostname import normalize_domain


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Shop.Example.COM:8443/store/", "shop.example.com:8443"),
        ("//shop.example.com/?x#y", "shop.example.com"),
        ("shop.example.com", "shop.example.com"),
        ("https://user:pw@Shop.example.com:443/", "shop.example.com:443"),
        ("http://127.0.0.1:08080/", "127.0.0.1:8080"),
        ("http://[2001:DB8::1]:8080/", "[2001:db8::1]:8080"),
        ("http://shop.example.com:/", "shop.example.com"),
        ("https://пример.рф/", "xn--e1afmkfd.xn--p1ai"),
        ("https://Straße.de:8443/", "xn--strae-oqa.de:8443"),
        ("http://my_shop.local/", "my_shop.local"),
        ("HTTPS://MAX.EXAMPLE/", "max.example"),
        ("http://shop.example:1/", "shop.example:1"),
        ("http://shop.example:65535/", "shop.example:65535"),
        ("https://shop.example/go?to=http://other.example/", "shop.example"),
        (
            "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61,
            "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61,
        ),
    ],
    ids=[
        "url",
        "no-scheme",
        "bare",
        "userinfo",
        "ipv4",
        "ipv6",
        "empty-port",
        "idna",
        "idna-port",
        "underscore",
        "capitals",
        "port-1",
        "port-65535",
        "url-in-query",
        "253",
    ],
)
def test_normalize_domain(value: str, expected: str) -> None:
    assert normalize_domain(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "no host"),
        ("https:///path", "no host"),
        ("http://shop example.com/", "not a host name"),
        ("http://shop..com/", "not a host name"),
        ("http://-shop.com/", "not a host name"),
        ("http://shop-.com/", "not a host name"),
        ("https://-ü.de/", r"is not a host name \(Label must not start or end with a hyphen"),
        ("a" * 64 + ".com", "not a host name"),
        ("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62, "at most 253"),
        ("http://shop.com:0/", "not 1..65535"),
        ("http://shop.com:65536/", "not 1..65535"),
        ("http://shop.com:80a/", "not a number"),
        ("http://[::g]/", "not an IPv6 address"),
        ("http://[::1]x/", "not an IPv6 address"),
        (".", "^'.' is not a host name"),  # the root alone: no name, and said as written
    ],
)
def test_normalize_domain_refuses_what_is_not_a_host(value: str, why: str) -> None:
    with pytest.raises(CollectError, match=why):
        normalize_domain(value)


@pytest.mark.parametrize("value", ["", "https:///path", "//?x", "user@"])
def test_a_value_without_a_host_says_only_that(value: str) -> None:
    with pytest.raises(CollectError) as caught:
        normalize_domain(value)
    assert str(caught.value) == "no host"


@pytest.mark.parametrize(
    "scheme", ["h", "git+ssh", "x-shop", "a.b"], ids=["one-letter", "plus", "hyphen", "dot"]
)
def test_normalize_domain_takes_off_any_scheme_rfc_3986_allows(scheme: str) -> None:
    assert normalize_domain(f"{scheme}://shop.example/") == "shop.example"


def test_a_port_that_is_not_a_number_is_refused_without_repeating_it() -> None:
    with pytest.raises(CollectError) as caught:
        normalize_domain("https://shop.example:hunter2/")
    assert str(caught.value) == "the port is not a number"


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("[" + "g" * 100 + "]", "[" + "g" * 79),
        ("[::1]x" + "y" * 100, "[::1]x" + "y" * 74),
        ("ü" * 100 + ".de", "ü" * 80),
        ("a" * 300, "a" * 80),
        ("shop.example:" + "9" * 30, "9" * 20),
    ],
    ids=["ipv6", "ipv6-port", "idna", "long", "port"],
)
def test_a_refused_host_is_quoted_cut_short(value: str, quoted: str) -> None:
    with pytest.raises(CollectError) as caught:
        normalize_domain(value)
    assert repr(quoted) in str(caught.value)


def test_normalize_domain_never_repeats_a_password() -> None:
    with pytest.raises(CollectError) as caught:
        normalize_domain("https://admin:hunter2@bad host/")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("www.Shop.example.com.", "www.shop.example.com."),
        ("https://Shop.example.:8443/x", "shop.example.:8443"),
        ("b\u00fccher.example.", "xn--bcher-kva.example."),
        ("a.", "a."),  # the shortest name written with its root dot
        ("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61 + ".", None),
    ],
)
def test_a_fully_qualified_host_with_its_root_dot_is_kept_as_written(
    given: str, sent: str | None
) -> None:
    assert normalize_domain(given) == (sent or given)


@pytest.mark.parametrize("given", [".", "..", "shop..example", "shop.example.."])
def test_a_dot_is_no_host_and_empty_labels_are_refused(given: str) -> None:
    with pytest.raises(CollectError):
        normalize_domain(given)
