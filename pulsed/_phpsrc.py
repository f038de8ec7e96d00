"""Reading shop files statically: PHP sources and composer.json, never executed.

This module owns everything pulsed learns from the shop's files (contract §2):
the ``VERSION`` / ``VERSION_CORE`` defines of ``index.php``, the domain in
``config.php`` and the module's ``composer.json`` version. Running the shop's PHP
to learn them would run whatever a compromised or half-updated shop holds, as the
daemon's user, once an hour; so the files are read as text and a small PHP
tokenizer finds the define.

:func:`read_text` is the one edge that touches the file system; everything else is
a pure function of a string. Every failure, for any input, is a
:class:`~pulsed._errors.CollectError`: a field that cannot be had becomes ``null``
with a warning, and the heartbeat still goes.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import pathlib
import re
import stat
from collections.abc import Iterator

from pulsed._errors import CollectError

MAX_SOURCE_BYTES = 1 << 20

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_READ_CHUNK = 1 << 16

_ERRNO_REASONS = {
    errno.ENOENT: "not found",
    errno.ENOTDIR: "not found (a parent is not a directory)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "symlink loop",
    errno.EISDIR: "not a regular file",
    # open(2) gives ENXIO for a socket, or a device with no driver behind it.
    errno.ENXIO: "not a regular file",
    errno.ENAMETOOLONG: "path too long",
    errno.EIO: "I/O error",
}


def read_text(path: pathlib.Path, limit: int = MAX_SOURCE_BYTES) -> str:
    """At most ``limit`` bytes of a regular file, decoded as UTF-8 (bad bytes replaced).

    A longer file is cut at the limit without an error: the defines sit at the top.
    O_NONBLOCK makes opening a FIFO return at once, so a FIFO planted in the shop
    tree is refused by the fstat check instead of hanging the daemon.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise CollectError(f"{path}: {_os_reason(exc)}") from exc
    except ValueError as exc:  # a NUL byte, or a name the file system encoding cannot hold
        raise CollectError(f"{path!r}: not a valid path") from exc
    try:
        data = _read_regular(fd, max(limit, 0))
    except OSError as exc:
        raise CollectError(f"{path}: {_os_reason(exc)}") from exc
    finally:
        os.close(fd)
    if data is None:
        raise CollectError(f"{path}: not a regular file")
    return data.decode("utf-8", errors="replace")


def _read_regular(fd: int, limit: int) -> bytes | None:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    data = bytearray()
    while len(data) < limit:
        chunk = os.read(fd, min(_READ_CHUNK, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None and exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    return exc.strerror or type(exc).__name__


# --- composer.json --------------------------------------------------------------------


def composer_version(text: str) -> str:
    """The ``"version"`` of a composer.json document."""
    try:
        # A BOM is what some editors add on save; the version is still plain to read.
        doc = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise CollectError(
            f"composer.json is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from exc
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        raise CollectError("composer.json is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise CollectError("composer.json is not a JSON object")
    if "version" not in doc:
        raise CollectError('composer.json has no "version"')
    version = doc["version"]
    if not isinstance(version, str):
        raise CollectError('composer.json "version" is not a string')
    if not version:
        raise CollectError('composer.json "version" is empty')
    return version


def plausible_version(value: str, what: str) -> str:
    """``value`` if it can go into an HTTP header and a log line as it is."""
    if (
        1 <= len(value) <= 64
        and all(" " <= ch <= "~" for ch in value)
        and value[0] != " "
        and value[-1] != " "
    ):
        return value
    raise CollectError(f"{what}: {value!r:.80} is not a plausible version")


# --- domain ---------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*+:(?=//)")
_AUTHORITY_END = re.compile(r"[/?#]")
_HOST_PUNCTUATION = frozenset("-._")


def domain_from_config_php(source: str) -> str:
    """The host of ``HTTPS_SERVER``, else of ``HTTP_SERVER``, in a config.php source.

    A define that is empty, has no host or cannot be read statically falls through
    to the other one, so a shop whose HTTPS_SERVER is built at run time still
    reports the domain of its static HTTP_SERVER.
    """
    problems: list[str] = []
    for constant in ("HTTPS_SERVER", "HTTP_SERVER"):
        try:
            value = find_define(source, constant)
        except CollectError as exc:
            problems.append(str(exc))
            continue
        if value is None:
            continue
        try:
            return normalize_domain(value)
        except CollectError as exc:
            problems.append(f"{constant}: {exc}")
    if problems:
        raise CollectError("; ".join(problems))
    raise CollectError("config.php defines neither HTTPS_SERVER nor HTTP_SERVER")


def normalize_domain(value: str) -> str:
    """Lower-cased host of a URL or bare host name, with its port when it has one.

    Messages never repeat the userinfo part: a URL may carry a password there.
    """
    text = value.strip()
    scheme = _SCHEME.match(text)
    if scheme is not None:
        text = text[scheme.end() :]
    text = text.removeprefix("//")
    authority = _AUTHORITY_END.split(text, maxsplit=1)[0]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise CollectError(f"{hostport!r:.80}: unclosed '[' of an IPv6 address")
        host, rest = hostport[: close + 1], hostport[close + 1 :]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise CollectError(f"{host!r:.80} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise CollectError(f"{hostport!r:.80}: unexpected text after the IPv6 address")
        port = rest[1:]
    else:
        host, _, port = hostport.partition(":")
        if not host:
            raise CollectError("no host")
        if not (
            all(ch.isalnum() or ch in _HOST_PUNCTUATION for ch in host)
            and any(ch.isalnum() for ch in host)
        ):
            raise CollectError(f"{host!r:.80} is not a host name")
    if not port:
        # "host:" is a URL whose port is left to the scheme's default.
        return host.lower()
    if not (port.isascii() and port.isdigit()):
        # Not repeated: in a URL with a raw "/" in its password, this is part of it.
        raise CollectError("the port is not a number")
    if not (len(port) <= 5 and 1 <= int(port) <= 65535):
        raise CollectError(f"port {port!r:.20} is not 1..65535")
    return f"{host.lower()}:{int(port)}"


# --- PHP: the tokenizer ---------------------------------------------------------------
#
# A subset of Zend/zend_language_scanner.l: enough to know, for every byte of a file,
# whether it is inline HTML, a comment, a string or code, and to read the value of a
# constant string literal. PHP's label characters are the bytes 0x80-0xff of UTF-8,
# which over decoded text is every non-ASCII character. All patterns use possessive
# quantifiers and disjoint alternatives, so no input makes them backtrack.

_LS = "A-Za-z_"
_LC = "0-9" + _LS


def _label_char(ascii_chars: str) -> str:
    # Every non-ASCII character is a label character too. A negated ASCII set says so
    # cheaply: sre takes ~9 ms to compile the range \x80-\U0010ffff at each place it
    # appears, which added up to a third of a second at every start, before READY=1.
    return "(?:[" + ascii_chars + r"]|[^\x00-\x7f])"


_LABEL = _label_char(_LS) + _label_char(_LC) + "*+"
_NOT_LABEL_CHAR = "(?!" + _label_char(_LC) + ")"
# "$name", "$name[offset]", "$name->prop" are PHP's simple interpolations; "{$name...}"
# in its common shapes is matched here too, so that only unusual code inside "{$ }"
# needs the tokenizer to find its closing brace.
_SIMPLE_VAR = r"\$" + _LABEL + r"(?:\[-?" + _label_char("$" + _LC) + r"*+\]|\??->" + _LABEL + ")?"
_SIMPLE_BRACED = (
    r"\{\$"
    + _LABEL
    + r"(?:\??->"
    + _LABEL
    + r"|\[(?:-?[0-9]++|'[^'\\\]]*+'|\"[^\"\\$\]]*+\"|\$?"
    + _LABEL
    + r")\])*+\}"
    # Code with nothing that could open a string, comment, block, heredoc or "?>" ends
    # at the first "}".
    + r"|(?:\{\$|\$\{)[^{}'\"`/#?<]*+\}"
)
# Whole string literals that the finder never needs as tokens: the constant ones and
# those with only simple interpolations.
_PLAIN_STRING = (
    r"'(?:[^'\\]++|\\[\s\S])*+'|\"(?:[^\"\\${]++|\\[\s\S]|"
    + _SIMPLE_VAR
    + "|"
    + _SIMPLE_BRACED
    + r"|\$(?!\{)|\{(?!\$))*+\""
)
# PHP's number literals; "0define" is "0" and then "define", as PHP reads it.
_LNUM = r"[0-9]++(?:_[0-9]++)*+"
_NUMBER = (
    r"0[xX][0-9a-fA-F]++(?:_[0-9a-fA-F]++)*+|0[bB][01]++(?:_[01]++)*+|0[oO][0-7]++(?:_[0-7]++)*+"
    r"|(?:(?:"
    + _LNUM
    + r")?+\."
    + _LNUM
    + "|"
    + _LNUM
    + r"\.(?:"
    + _LNUM
    + r")?+|"
    + _LNUM
    + r")(?:[eE][+-]?+"
    + _LNUM
    + r")?+"
)
_TOKEN_ALTERNATIVES = "|".join(
    (
        r"(?P<ws>[ \t\n\r]++)",
        # "?>" ends a line comment as it ends PHP mode; "#[" opens a PHP 8 attribute.
        r"(?P<line>(?://|#(?!\[))[^\r\n?]*+(?:\?(?!>)[^\r\n?]*+)*+)",
        r"(?P<block>/\*)",
        r"(?P<close>\?>)",
        r"(?P<heredoc>[bB]?<<<[ \t]*+(?:(?P<hd>"
        + _LABEL
        + r')|"(?P<hdq>'
        + _LABEL
        + r")\"|'(?P<nd>"
        + _LABEL
        + r")')(?:\r\n|\r|\n))",
        r"(?P<quote>[bB]?['\"`])",
        r"(?P<name>\\?" + _LABEL + r"(?:\\" + _LABEL + r")*+)",
        r"(?P<var>\$" + _LABEL + ")",
        r"(?P<num>" + _NUMBER + ")",
        r"(?P<op>#\[|\.\.\.|<=>|===|!==|\?\?=|\?->|\*\*=|<<=|>>=|\+\+|--|->|=>|::|&&"
        r"|\|\||\?\?|<<|>>|\*\*|<>|[-+*/.%&|^<>!=]=|[\s\S])",
    )
)
_TOKEN = re.compile(_TOKEN_ALTERNATIVES)
# Names the finder acts on (or that make a following "define" not a call). Every other
# name, like most of PHP, is skipped in bulk by _FAST_TOKEN.
_KEYWORD = (
    r"(?i:\\?(?:define|const|function|fn|new|class|interface|trait|enum|namespace"
    r"|__halt_compiler))(?!" + _label_char(_LC + r"\\") + ")"
)
# What the finder can step over without looking: whitespace, complete comments,
# plain strings, variables, numbers, ordinary names, member names ("->x", "::x") and
# operators other than braces and the starts of heredocs, attributes and "?>".
# A "/*" that never closes is left to _TOKEN, which ends the file there as PHP does.
_SKIP_ALTERNATIVES = (
    r"[ \t\n\r]++",
    r"[+*%^|!~@=,.()\[\]&\\>\x00-\x08\x0b\x0c\x0e-\x1f\x7f]",
    ";",  # kept in its own alternative: _FAST_TOKEN_TO_SEMICOLON leaves it out
    # A variable whole: "$define(...)" calls whatever $define holds.
    r"\$(?:" + _LABEL + ")?+",
    # "new X" as one piece, so that only "new define" and "new class" stop the skipping.
    r"(?i:new)[ \t\n\r]++(?!" + _KEYWORD + r")\\?" + _LABEL + r"(?:\\" + _LABEL + r")*+",
    r"(?!" + _KEYWORD + r")\\?" + _LABEL + r"(?:\\" + _LABEL + r")*+",
    _PLAIN_STRING,
    r"(?://|#(?!\[))[^\r\n?]*+(?:\?(?!>)[^\r\n?]*+)*+",
    r"/\*(?:[^*]++|\*(?!/))*+\*/",
    r"(?:->|\?->|::)[ \t\n\r]*+\$?" + _LABEL,
    _NUMBER,
    r"-(?!>)|:(?!:)|\?(?!-?>)|<(?!<<)|/(?![*/])",
)
# Runs of braces come as one token: brace-heavy code costs no token per brace.
_BRACES = r"(?P<braces>[{}](?:[ \t\n\r]*+[{}])*+)|"


def _fast(alternatives: tuple[str, ...]) -> re.Pattern[str]:
    skip = "|".join(alternatives)
    return re.compile("(?:(?:" + skip + ")++)?+(?:" + _BRACES + _TOKEN_ALTERNATIVES + ")")


# Steps over everything but braces, keywords, heredocs, attributes and "?>" ...
_FAST_TOKEN = _fast(_SKIP_ALTERNATIVES)
# ... and, while a function or class header awaits its "{" or ";", not over ";".
_FAST_TOKEN_TO_SEMICOLON = _fast(tuple(alt for alt in _SKIP_ALTERNATIVES if alt != ";"))
# define( 'NAME' , — the common shape, read without tokens to pass other defines quickly.
_PLAIN_NAME_ARG = re.compile(r"[ \t\n\r]*+(?:'([^'\\]*+)'|\"([^\"\\$]*+)\")[ \t\n\r]*+[,)]")
_PROPERTY_GAP = re.compile(
    r"(?:[ \t\n\r]++|(?://|#)[^\r\n?]*+(?:\?(?!>)[^\r\n?]*+)*+|/\*(?:[^*]++|\*(?!/))*+\*/)*+"
)
# Whitespace and comments between two tokens (and "&", as in "function &define").
_GAP = re.compile(
    r"(?:[ \t\n\r&]++|(?://|#(?!\[))[^\r\n?]*+(?:\?(?!>)[^\r\n?]*+)*+|/\*(?:[^*]++|\*(?!/))*+\*/)*+"
)
# Short tags count: they are on in PHP's built-in default, and a shop may rely on them.
_OPEN_TAG = re.compile(r"<\?(?:php(?=[ \t\r\n]|\Z)|=)?", re.IGNORECASE)

_SQ_BODY = re.compile(r"(?:[^'\\]++|\\[\s\S])*+'")
_SQ_ESCAPE = re.compile(r"\\([\\'])")
# A double-quoted string with no interpolation, up to its closing quote.
_DQ_CONSTANT = re.compile(
    r'(?:[^"\\${]++|\\[\s\S]|\$(?!' + _label_char(_LS + "{") + r")|\{(?!\$))*+" + '"'
)
_HEREDOC_CONSTANT = re.compile(
    r"(?:[^\\${]++|\\[\s\S]?+|\$(?!" + _label_char(_LS + "{") + r")|\{(?!\$))*+"
)
# Everything of an interpolating string up to its end, "{$" or "${" (those two open code).
_DQ_RUN = re.compile(
    r'(?:[^"\\${]++|\\[\s\S]|' + _SIMPLE_VAR + "|" + _SIMPLE_BRACED + r"|\$(?!\{)|\{(?!\$))*+"
)
_BACKTICK_RUN = re.compile(
    r"(?:[^`\\${]++|\\[\s\S]|" + _SIMPLE_VAR + "|" + _SIMPLE_BRACED + r"|\$(?!\{)|\{(?!\$))*+"
)
# In a heredoc a backslash never hides a newline: the closing marker is looked for on
# every line.
_HEREDOC_RUN = re.compile(
    r"(?:[^\r\n\\${]++|\\[^\r\n]?+|" + _SIMPLE_VAR + "|" + _SIMPLE_BRACED + r"|\$(?!\{)|\{(?!\$))*+"
)
_NEWLINE_SPLIT = re.compile(r"(\r\n|\r|\n)")

_DQ_ESCAPE = re.compile(
    rb'\\(?:([ntrvef\\$"])|([0-7]{1,3})|[xX]([0-9A-Fa-f]{1,2})|u\{([0-9A-Fa-f]*+)(\}?))'
)
_HEREDOC_ESCAPE = re.compile(
    rb"\\(?:([ntrvef\\$])|([0-7]{1,3})|[xX]([0-9A-Fa-f]{1,2})|u\{([0-9A-Fa-f]*+)(\}?))"
)
_SIMPLE_ESCAPES = {
    b"n": b"\n",
    b"t": b"\t",
    b"r": b"\r",
    b"v": b"\v",
    b"e": b"\x1b",
    b"f": b"\f",
    b"\\": b"\\",
    b"$": b"$",
    b'"': b'"',
}

# Real shop files nest interpolations one or two deep; the cap keeps hostile input
# from reaching Python's recursion limit.
_MAX_NESTING = 32

# (kind, text, start, end, literal); kind is "name", "var", "num", "op", "str" or, when
# stepping over code in bulk, "braces" (a run of "{" and "}").
_Tok = tuple[str, str, int, int, "_Lit | None"]


class _LexError(Exception):
    """The source stops being PHP that compiles here; nothing after it is read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotConstant(Exception):
    """An expression whose value is not known without running PHP."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Lit:
    """A string literal; its value is decoded only when a define asks for it."""

    __slots__ = ("body", "indent", "kind", "problem")

    def __init__(self, kind: str, body: str | None, indent: str = "", problem: str = "") -> None:
        self.kind = kind  # "'", '"', "`", "heredoc" or "nowdoc"
        self.body = body
        self.indent = indent
        self.problem = problem

    def value(self) -> str:
        if self.problem or self.body is None:
            raise _NotConstant(self.problem or "is not a constant string")
        body = self.body
        if self.kind == "'":
            return _SQ_ESCAPE.sub(r"\1", body) if "\\" in body else body
        if self.kind == '"':
            return _unescape(body, _DQ_ESCAPE)
        if self.indent:
            body = _strip_indentation(body, self.indent)
        if self.kind == "nowdoc":
            return body
        return _unescape(body, _HEREDOC_ESCAPE)


def _unescape(text: str, pattern: re.Pattern[bytes]) -> str:
    if "\\" not in text:
        return text
    # Escapes make bytes ("\xc3\xa9" is one UTF-8 character), as PHP strings are bytes.
    raw = text.encode("utf-8", "surrogatepass")
    return pattern.sub(_escape_bytes, raw).decode("utf-8", "replace")


def _escape_bytes(match: re.Match[bytes]) -> bytes:
    simple, octal, hexa, code, brace = match.groups()
    if simple is not None:
        return _SIMPLE_ESCAPES[simple]
    if octal is not None:
        # PHP warns about "\400" and up, and keeps the low byte.
        return bytes((int(octal, 8) & 0xFF,))
    if hexa is not None:
        return bytes((int(hexa, 16),))
    if not code or not brace:
        raise _NotConstant("has an invalid \\u{...} escape (a PHP parse error)")
    digits = code.lstrip(b"0") or b"0"
    if len(digits) > 6 or int(digits, 16) > 0x10FFFF:
        raise _NotConstant("has a \\u{...} escape beyond U+10FFFF (a PHP parse error)")
    # PHP writes a surrogate code point as its three bytes; decoding replaces them.
    return chr(int(digits, 16)).encode("utf-8", "surrogatepass")


def _strip_indentation(body: str, indent: str) -> str:
    """PHP 7.3+ flexible heredoc: the closing marker's indentation leaves every line."""
    if " " in indent and "\t" in indent:
        raise _NotConstant("is a heredoc indented with both tabs and spaces (a PHP parse error)")
    width, char = len(indent), indent[0]
    parts = _NEWLINE_SPLIT.split(body)
    for i in range(0, len(parts), 2):
        line = parts[i]
        if line.startswith(indent):
            parts[i] = line[width:]
            continue
        lead = len(line) - len(line.lstrip(char))
        if lead == len(line):
            # PHP lets a whitespace-only line be shorter than the indentation.
            parts[i] = ""
        elif line[lead] in " \t":
            raise _NotConstant(
                "is a heredoc indented with both tabs and spaces (a PHP parse error)"
            )
        else:
            raise _NotConstant("is a heredoc line indented less than its closing marker")
    return "".join(parts)


class _Mode:
    """How much a token stream may step over: its owner switches it between tokens."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source

    def tokens(self, pos: int, depth: int, mode: _Mode, *, html: bool) -> Iterator[_Tok]:
        """Significant tokens from ``pos``; ``html``: start outside PHP tags.

        ``mode`` is read before every token, so its owner can switch between
        stepping over code in bulk and seeing every token (the arguments of a define).
        In bulk mode a run of braces is one "braces" token.
        """
        src = self.src
        n = len(src)
        if html:
            pos = _after_open_tag(src, pos)
        while pos < n:
            m = mode.pattern.match(src, pos)
            if m is None:  # stepped over everything up to the end
                return
            kind = m.lastgroup or "op"
            start = m.start(kind)
            end = m.end()
            if kind == "ws" or kind == "line":
                pos = end
            elif kind == "block":
                close = src.find("*/", end)
                if close < 0:
                    # PHP only warns about an unterminated comment: it runs to the end.
                    return
                pos = close + 2
            elif kind == "close":
                yield ("op", ";", start, end, None)
                pos = _after_open_tag(src, end)
            elif kind == "quote":
                lit, after = self._quoted(src[end - 1], end, depth)
                yield ("str", "", start, after, lit)
                pos = after
            elif kind == "heredoc":
                lit, after = self._heredoc(m, depth)
                yield ("str", "", start, after, lit)
                pos = after
            else:
                text = src[start:end]
                yield (kind, text, start, end, None)
                pos = end
                if text == "->" or text == "?->":
                    # PHP now reads a property name, and "#" starts a comment there,
                    # even as "#[".
                    gap = _PROPERTY_GAP.match(src, pos)
                    pos = gap.end() if gap is not None else pos

    def _quoted(self, quote: str, pos: int, depth: int) -> tuple[_Lit, int]:
        src = self.src
        if quote == "'":
            m = _SQ_BODY.match(src, pos)
            if m is None:
                raise _LexError("an unterminated string")
            return _Lit("'", src[pos : m.end() - 1]), m.end()
        if quote == '"':
            m = _DQ_CONSTANT.match(src, pos)
            if m is not None:
                return _Lit('"', src[pos : m.end() - 1]), m.end()
            after = self._skip_interpolated(pos, '"', _DQ_RUN, depth)
            return _Lit('"', None, problem="interpolates a variable"), after
        after = self._skip_interpolated(pos, "`", _BACKTICK_RUN, depth)
        return _Lit("`", None, problem="is a shell command (backticks)"), after

    def _skip_interpolated(self, pos: int, quote: str, run: re.Pattern[str], depth: int) -> int:
        src = self.src
        n = len(src)
        while True:
            m = run.match(src, pos)
            pos = m.end() if m is not None else pos
            if pos >= n:
                raise _LexError("an unterminated string")
            ch = src[pos]
            if ch == quote:
                return pos + 1
            if ch == "$":  # "${": the run stops at no other "$"
                pos = self._skip_code(pos + 2, depth + 1)
            elif ch == "{":  # "{$"
                pos = self._skip_code(pos + 1, depth + 1)
            else:  # a backslash as the last character of the file
                raise _LexError("an unterminated string")

    def _skip_code(self, pos: int, depth: int) -> int:
        """The position after the "}" that closes code interpolated into a string."""
        if depth > _MAX_NESTING:
            raise _LexError("string interpolations nested too deeply")
        level = 0
        for kind, text, start, _end, _lit in self.tokens(pos, depth, _BRACES_ONLY, html=False):
            if kind != "braces" and kind != "op":
                continue
            for i, ch in enumerate(text):
                if ch == "{":
                    level += 1
                elif ch == "}":
                    if level == 0:
                        return start + i + 1
                    level -= 1
        raise _LexError("an unterminated string interpolation")

    def _heredoc(self, m: re.Match[str], depth: int) -> tuple[_Lit, int]:
        src = self.src
        label = m.group("hd") or m.group("hdq") or m.group("nd") or ""
        body_start = m.end()
        marker = re.compile(r"[\r\n]([ \t]*+)" + re.escape(label) + _NOT_LABEL_CHAR)
        # From the opening line's own newline, so that an empty heredoc is found too.
        found = marker.search(src, body_start - 1)
        if found is None:
            raise _LexError("an unterminated heredoc")
        newline = found.start()
        if newline < body_start:
            body = ""
        else:
            end = newline - 1 if src.startswith("\r\n", newline - 1) else newline
            body = src[body_start : max(end, body_start)]
        if m.group("nd") is not None:
            return _Lit("nowdoc", body, indent=found.group(1)), found.end()
        if _HEREDOC_CONSTANT.fullmatch(body):
            return _Lit("heredoc", body, indent=found.group(1)), found.end()
        # The marker found may sit inside an interpolated expression: look again the way
        # PHP's scanner does, line by line, stepping over interpolated code.
        after = self._skip_heredoc(label, body_start, depth)
        return _Lit("heredoc", None, problem="interpolates a variable"), after

    def _skip_heredoc(self, label: str, pos: int, depth: int) -> int:
        src = self.src
        n = len(src)
        marker = re.compile(r"[ \t]*+" + re.escape(label) + _NOT_LABEL_CHAR)
        line_start = True
        while True:
            if line_start:
                found = marker.match(src, pos)
                if found is not None:
                    return found.end()
            m = _HEREDOC_RUN.match(src, pos)
            pos = m.end() if m is not None else pos
            if pos >= n:
                raise _LexError("an unterminated heredoc")
            ch = src[pos]
            line_start = ch in "\r\n"
            if ch == "\r":
                pos += 2 if src.startswith("\n", pos + 1) else 1
            elif ch == "\n":
                pos += 1
            elif ch == "$":  # "${"
                pos = self._skip_code(pos + 2, depth + 1)
            else:  # "{$"
                pos = self._skip_code(pos + 1, depth + 1)


_BRACES_ONLY = _Mode(_FAST_TOKEN)


def _after_open_tag(src: str, pos: int) -> int:
    m = _OPEN_TAG.search(src, pos)
    return m.end() if m is not None else len(src)


def _line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + src.count("\r", 0, pos) - src.count("\r\n", 0, pos) + 1


# --- PHP: finding the define ----------------------------------------------------------

_MEMBER_ACCESS = frozenset(("->", "?->", "::"))
# After these, "define" names something being declared or constructed, not a call.
_NOT_A_CALL_AFTER = frozenset(("function", "fn", "new"))
# Their "{ ... }" is code that runs later or never: a function, method or class body.
_BODY_KEYWORDS = frozenset(("function", "class", "interface", "trait"))
_OPENERS = frozenset(("(", "[", "{", "#["))
_CLOSERS = frozenset((")", "]", "}"))


class _Stream:
    __slots__ = ("_ahead", "_it", "mode")

    def __init__(self, lexer: _Lexer) -> None:
        self.mode = _Mode(_FAST_TOKEN)
        self._it = lexer.tokens(0, 0, self.mode, html=True)
        self._ahead: list[_Tok] = []

    def take(self) -> _Tok | None:
        if self._ahead:
            return self._ahead.pop()
        return next(self._it, None)

    def peek(self) -> _Tok | None:
        """The next token, every token counted (nothing stepped over)."""
        if not self._ahead:
            pattern, self.mode.pattern = self.mode.pattern, _TOKEN
            try:
                tok = next(self._it, None)
            finally:
                self.mode.pattern = pattern
            if tok is None:
                return None
            self._ahead.append(tok)
        return self._ahead[-1]


def _is_op(tok: _Tok | None, text: str) -> bool:
    return tok is not None and tok[0] == "op" and tok[1] == text


def find_define(source: str, name: str) -> str | None:
    """The value of ``define('NAME', ...)`` or ``const NAME = ...;`` at PHP top level.

    ``None`` when the source does not define ``name`` (plain OpenCart has no
    VERSION_CORE). The first definition wins, as in PHP. A definition whose value
    is not a constant string expression (string literals, "." and parentheses)
    raises :class:`CollectError`. Definitions inside function and class bodies do
    not count: they do not run when the file is included.
    """
    try:
        return _Finder(source, name).run()
    except _LexError:
        # PHP would not compile the file from here on, so nothing here is defined.
        return None
    except RecursionError as exc:
        raise CollectError(f"{name}: the source is nested too deeply to read") from exc


class _Finder:
    def __init__(self, source: str, name: str) -> None:
        self.src = source
        self.name = name
        self.stream = _Stream(_Lexer(source))

    def run(self) -> str | None:
        stream = self.stream
        mode = stream.mode
        blocks: list[str] = []  # "block", "body" or "namespace", one per open "{"
        bodies = 0  # how many of them are function or class bodies
        pending = ""  # what the next "{" opens, when a keyword announced it
        namespaced = False  # inside "namespace X": const X would be X\NAME
        attribute = 0  # bracket depth inside "#[ ... ]"
        # The token before this one and where it ended: it only says what this one is
        # when nothing was stepped over between them.
        prev, prev_end = "", 0
        while (tok := stream.take()) is not None:
            kind, text = tok[0], tok[1]
            low = text.lower() if kind == "name" else text
            if attribute:
                if kind == "op" and text in ("[", "#["):
                    attribute += 1
                elif kind == "op" and text == "]":
                    attribute -= 1
            elif kind == "braces" or (text in ("{", "}") and kind == "op"):
                for ch in text:
                    if ch == "{":
                        blocks.append(pending or "block")
                        if pending == "body":
                            bodies += 1
                        pending = ""
                    elif ch == "}" and blocks:
                        closed = blocks.pop()
                        if closed == "body":
                            bodies -= 1
                        elif closed == "namespace":
                            namespaced = False
            elif kind == "op":
                if text == ";":
                    pending = ""
                elif text == "#[":
                    attribute = 1
            elif kind != "name" or (prev in _MEMBER_ACCESS and self._touching(prev_end, tok[2])):
                pass
            elif low in _BODY_KEYWORDS:
                if not _is_op(stream.peek(), ":"):  # else a named argument "class: ..."
                    pending = "body"
            elif low == "enum":
                following = stream.peek()
                if following is not None and following[0] == "name":
                    pending = "body"
            elif bodies:
                pass
            elif (
                low in ("define", "\\define")
                and not (prev in _NOT_A_CALL_AFTER and self._touching(prev_end, tok[2]))
                and _is_op(stream.peek(), "(")
            ):
                paren = stream.take()
                if paren is not None and not self._other_name(paren[3]):
                    mode.pattern = _TOKEN
                    value = self._define_call(tok)
                    if value is not None:
                        return value
                low = ")"
            elif low == "const" and not namespaced and all(b == "namespace" for b in blocks):
                mode.pattern = _TOKEN
                value = self._const_statement()
                if value is not None:
                    return value
                low = ";"
            elif low == "namespace" and not blocks:
                following = stream.peek()
                namespaced = following is not None and following[0] == "name"
                pending = "namespace"
            elif low == "__halt_compiler":
                return None  # what follows is data, not code
            if text != "&":  # "function &define" declares a function returning a reference
                prev, prev_end = low, tok[3]
            if attribute:
                mode.pattern = _TOKEN
            elif pending:
                mode.pattern = _FAST_TOKEN_TO_SEMICOLON
            else:
                mode.pattern = _FAST_TOKEN
        return None

    def _touching(self, end: int, start: int) -> bool:
        """Whether only whitespace, comments or "&" lie between ``end`` and ``start``."""
        m = _GAP.match(self.src, end, start)
        return m is not None and m.end() == start

    def _other_name(self, pos: int) -> bool:
        """Whether ``define(`` at ``pos`` plainly names another constant."""
        m = _PLAIN_NAME_ARG.match(self.src, pos)
        return m is not None and (m.group(1) if m.group(1) is not None else m.group(2)) != self.name

    def _unreadable(self, at: _Tok, reason: str) -> CollectError:
        line = _line_of(self.src, at[2])
        return CollectError(f"{self.name} (line {line}) cannot be read statically: {reason}")

    def _define_call(self, call: _Tok) -> str | None:
        """After ``define(``: the value when the call defines our name, else None."""
        args: list[tuple[str, list[_Tok]]] = []
        closer = ","
        try:
            while closer == ",":
                label, toks, closer = self._argument((",", ")"), labels=True)
                if toks or label or closer == ",":
                    args.append((label, toks))
        except _LexError as exc:
            if self._names_us(args):
                raise self._unreadable(call, f"the call reaches {exc.reason}") from None
            raise
        if not self._names_us(args):
            return None
        if closer != ")":
            raise self._unreadable(call, f"the call has an unbalanced {closer!r}")
        value = _argument_of(args, 1, "value")
        if value is None:
            raise self._unreadable(call, "define() has no value")
        try:
            return _string_expression(value)
        except _NotConstant as exc:
            raise self._unreadable(call, f"the value {exc.reason}") from None

    def _names_us(self, args: list[tuple[str, list[_Tok]]]) -> bool:
        toks = _argument_of(args, 0, "constant_name")
        if toks is None:
            return False
        try:
            return _string_expression(toks) == self.name
        except _NotConstant:
            return False  # define($name, ...) may be anything; PHP would have to run

    def _const_statement(self) -> str | None:
        """After ``const``: the value when the statement declares our name, else None."""
        stream = self.stream
        while True:
            const = stream.take()
            if const is None or const[0] != "name" or not _is_op(stream.peek(), "="):
                return None
            stream.take()
            ours = const[1] == self.name
            try:
                _, toks, closer = self._argument((",", ";"), labels=False)
            except _LexError as exc:
                if ours:
                    raise self._unreadable(const, f"the statement reaches {exc.reason}") from None
                raise
            if ours:
                if closer not in (",", ";"):
                    raise self._unreadable(const, f"the statement has an unbalanced {closer!r}")
                try:
                    return _string_expression(toks)
                except _NotConstant as exc:
                    raise self._unreadable(const, f"the value {exc.reason}") from None
            if closer != ",":
                return None

    def _argument(self, closers: tuple[str, str], *, labels: bool) -> tuple[str, list[_Tok], str]:
        """One argument: (named-argument label or "", its tokens, the token that ended it).

        The end is a depth-0 closer, or an unbalanced bracket (returned as the closer).
        """
        stream = self.stream
        label = ""
        tok = stream.take()
        if labels and tok is not None and tok[0] == "name" and _is_op(stream.peek(), ":"):
            label = tok[1]
            stream.take()
            tok = stream.take()
        toks: list[_Tok] = []
        depth = 0
        while tok is not None:
            if tok[0] == "op":
                text = tok[1]
                if depth == 0 and text in closers:
                    return label, toks, text
                if text in _OPENERS:
                    depth += 1
                elif text in _CLOSERS:
                    if depth == 0:
                        return label, toks, text
                    depth -= 1
            toks.append(tok)
            tok = stream.take()
        raise _LexError("the end of the file")


def _argument_of(args: list[tuple[str, list[_Tok]]], index: int, label: str) -> list[_Tok] | None:
    positional = [toks for name, toks in args if not name]
    if index < len(positional):
        return positional[index]
    for name, toks in args:
        if name == label:
            return toks
    return None


def _string_expression(toks: list[_Tok]) -> str:
    """The value of string literals joined by "." and wrapped in parentheses."""
    parts: list[str] = []
    depth = 0
    want_operand = True
    for i, tok in enumerate(toks):
        kind, text, lit = tok[0], tok[1], tok[4]
        if want_operand:
            if kind == "op" and text == "(":
                depth += 1
                continue
            if lit is not None:
                parts.append(lit.value())
                want_operand = False
                continue
        elif kind == "op" and text == ".":
            want_operand = True
            continue
        elif kind == "op" and text == ")" and depth:
            depth -= 1
            continue
        raise _NotConstant(_describe(toks, i))
    if not toks:
        raise _NotConstant("is empty")
    if want_operand or depth:
        raise _NotConstant("is not a complete expression")
    return "".join(parts)


def _describe(toks: list[_Tok], i: int) -> str:
    kind, text = toks[i][0], _show(toks[i][1])
    if kind == "var":
        return f"uses the variable {text}"
    if kind == "name":
        if i + 1 < len(toks) and _is_op(toks[i + 1], "("):
            return f"calls {text}()"
        return f"uses the constant {text}"
    if kind == "num":
        return f"uses the number {text}"
    if kind == "str":
        return 'has a string where "." was expected'
    return f"uses the operator {text}"


def _show(text: str) -> str:
    if len(text) <= 40 and text.isprintable():
        return text
    return repr(text[:40])
