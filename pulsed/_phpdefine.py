"""Finding ``define('NAME', 'value')`` in PHP source, statically (contract §2).

This module owns the PHP side of reading a shop: a small tokenizer that knows, for
every byte, whether it is inline HTML, a comment, a string or code, and a scanner
that lists each ``define()`` call with its line, its value when that is a constant
string (literals joined by ``.``), and whether the call runs every time the file is
included (top level) or only on some runs (inside an ``if``/``else``, a ``switch``,
a ``try``, a loop, a function or class body, or after ``&&``/``||``/``?``).
:func:`value_of` turns that list into PHP's answer, or a :class:`CollectError` when
only running the shop could give one. Nothing here touches the file system.

A shop file may be hostile, so reading one takes time linear in its size, on every
Python pulsed runs on. The tokenizer is the standard library's ``re``, with every
repetition written so that it can match a text in one way only (``normal*(special
normal*)*``, a special starting with a character the normal run excludes): a failed
match gives back each character once, where a nested ``(?:x+|y)*`` would try every way
of splitting the text (an unclosed quote and 26 spaces: seconds). Possessive
quantifiers would say the same, but Python 3.10's ``re`` has none, and the ``regex``
package that has them would be a compiled dependency of the daemon, and a second regular
expression engine fed hostile text, for what the unambiguous forms say in plain ``re``.
Each string is scanned once: an unclosed one runs to the end of the file, as PHP's
scanner reads it (PHP then refuses the file), and the reading ends there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pulsed._errors import CollectError

# A PHP label: ASCII letters, "_", and (as PHP takes bytes 0x80-0xff) any non-ASCII.
# Each class is written as the ASCII it is not: the same characters, but a class with a
# range up to U+10FFFF took re 4-14 ms to compile, each of the six times the patterns
# below hold one, at every start (a start of one shop took about 100 ms over its floor).
_FIRST = r"[^\x00-@\[-^`{-\x7f]"  # [A-Za-z_\x80-\U0010ffff]
_NEXT = r"[^\x00-/:-@\[-^`{-\x7f]"  # [A-Za-z0-9_\x80-\U0010ffff]
_L = _FIRST + _NEXT + "*"
_NOT_LABEL = f"(?!{_NEXT})"
# Whitespace and comments; "?>" ends a line comment, "#[" opens a PHP 8 attribute. A
# line comment is held to its true end, so that two comments on one line ("// a // b")
# cannot also be read as one.
_LINE_COMMENT = r"(?://|#(?!\[))[^\r\n?]*(?:\?(?!>)[^\r\n?]*)*(?=[\r\n]|\?>|\Z)"
_BLOCK_COMMENT = r"/\*[^*]*(?:\*(?!/)[^*]*)*(?:\*/|\Z)"
_SPACE = r"[ \t\r\n]*"
_GAP = _SPACE + r"(?:(?:" + _LINE_COMMENT + "|" + _BLOCK_COMMENT + ")" + _SPACE + ")*"
_HEREDOC_OPEN = r"[bB]?<<<[ \t]*(?P<quote>[\"']?)(?P<label>" + _L + r")(?P=quote)(?:\r\n|\r|\n)"
# A single-quoted string runs to its quote or, unclosed, to the end of the file, as
# PHP's scanner reads it (PHP then refuses the file): sq_end tells which.
_TOKEN = re.compile(
    (
        _GAP + r"(?:(?P<close>\?>)|(?P<heredoc>" + _HEREDOC_OPEN + ")"
        r"|(?P<sq>[bB]?'[^'\\]*(?:\\[\s\S][^'\\]*)*(?P<sq_end>')?)|(?P<dq>[bB]?[\"`])"
        r"|(?P<name>\\?LABEL(?:\\LABEL)*)|(?P<var>\$LABEL)"
        r"|(?P<num>[0-9][0-9A-Za-z_]*(?:\.(?=[0-9])[0-9A-Za-z_]*)*)"
        r"|(?P<op>\?->|->|::|=>|&&|\|\||\?\?|#\[|[\s\S])|\Z)"
    ).replace("LABEL", _L)
)
_OPEN_TAG = re.compile(r"<\?(?:php(?=[ \t\r\n]|\Z)|=)?", re.IGNORECASE)
# Text of an interpolating string up to its end or to "{$" / "${", which open code.
_RUN = {
    q: re.compile(r"[^" + q + r"\\${]*(?:(?:\\[\s\S]|\$(?!\{)|\{(?!\$))[^" + q + r"\\${]*)*")
    for q in '"`'
}
_INTERPOLATES = re.compile(r"\$(?:[A-Za-z_{]|[^\x00-\x7f])|\{\$")
_ESCAPE = re.compile(
    rb"\\(?:([ntrvef\\$\"])|([0-7]{1,3})|[xX]([0-9A-Fa-f]{1,2})|u\{([0-9A-Fa-f]+)\})"
)
_SIMPLE = dict(zip(b'ntrvef\\$"', b'\n\t\r\v\x1b\f\\$"', strict=True))
_LINES = re.compile(r"(\r\n|\r|\n)")
_HEREDOC_OPENER = re.compile(_HEREDOC_OPEN)
_MAX_NESTING = 32  # "{$a["{$b[...]}"]}" in real files is one or two deep

_CONTROL = frozenset(("if", "elseif", "while", "for", "foreach", "switch", "catch", "match"))
_BARE_CONTROL = frozenset(("else", "try", "finally", "do"))
_BODY = frozenset(("function", "class", "interface", "trait", "enum"))
_ALT_END = frozenset(("endif", "endwhile", "endfor", "endforeach", "endswitch", "enddeclare"))
_SHORT_CIRCUIT = frozenset(("&&", "||", "?", "??", "and", "or", "xor"))
_NOT_A_CALL_AFTER = frozenset(("->", "?->", "::", "function", "new", "const"))


_Tok = tuple[str, str, int]  # kind, source text, offset


class _Unterminated(Exception):
    """A string, heredoc or interpolation runs off the end: PHP stops compiling there."""


@dataclass(frozen=True, slots=True)
class Define:
    """One ``define()`` call: its constant's name and what is known of its value."""

    name: str
    value: str | None  # None: not a constant string expression
    problem: str  # why the value is None
    line: int
    conditional: bool  # runs only on some runs of the file


def _tokens(src: str, pos: int, depth: int = 0, *, html: bool = True) -> Iterator[_Tok]:
    """(kind, text, start) of each token; strings are one "str" token with their source."""
    if html:
        m = _OPEN_TAG.search(src, pos)
        pos = m.end() if m else len(src)
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        kind = m.lastgroup if m else None  # "[\s\S]" or "\Z" matches anywhere
        if m is None or kind is None:  # only whitespace or comments were left
            return
        start, pos = m.start(kind), m.end()
        if kind == "close":
            yield "op", ";", start
            tag = _OPEN_TAG.search(src, pos)
            pos = tag.end() if tag else len(src)
            continue
        if kind == "sq" and m["sq_end"] is None:
            raise _Unterminated
        if kind == "dq":
            pos = _skip_interpolated(src, pos, src[pos - 1], depth)
        elif kind == "heredoc":  # it ends at its label alone at the start of a line
            end = re.compile(r"[\r\n][ \t]*" + re.escape(m["label"]) + _NOT_LABEL)
            found = end.search(src, pos - 1)  # from its own newline: "<<<A\nA" is empty
            if found is None:
                raise _Unterminated
            pos = found.end()
        yield "str" if kind in ("sq", "dq", "heredoc") else kind, src[start:pos], start


def _skip_interpolated(src: str, pos: int, quote: str, depth: int) -> int:
    """The end of a "..." or `...` string opened before ``pos``, over its ``{$...}`` code."""
    while True:
        pos = _RUN[quote].match(src, pos).end()  # type: ignore[union-attr]  # may match empty
        if pos >= len(src):
            raise _Unterminated
        if src[pos] == quote:
            return pos + 1
        if depth >= _MAX_NESTING:
            raise _Unterminated
        level = 0
        code = pos + 2 if src[pos] == "$" else pos + 1
        for kind, text, start in _tokens(src, code, depth + 1, html=False):
            if kind == "op" and text in "{}":
                level += 1 if text == "{" else -1
                if level < 0:
                    pos = start + 1
                    break
        else:
            raise _Unterminated


def _literal(token: str) -> str:
    """The value of a string literal's source; ValueError when it interpolates."""
    body = token[1:] if token[0] in "bB" else token
    if body[0] == "'":
        return re.sub(r"\\([\\'])", r"\1", body[1:-1])
    if body[0] == "`":
        raise ValueError("is a shell command (backticks)")
    if body[0] == '"':
        text, heredoc = body[1:-1], False
    else:
        text, nowdoc = _heredoc_body(body)
        if nowdoc:
            return text
        heredoc = True
    if _INTERPOLATES.search(re.sub(r"\\[\s\S]", "", text)):
        raise ValueError("interpolates a variable")
    if "\\" not in text:
        return text
    raw = text.encode("utf-8", "surrogatepass")
    return _ESCAPE.sub(lambda m: _escape(m, heredoc), raw).decode("utf-8", "replace")


def _heredoc_body(source: str) -> tuple[str, bool]:
    """A heredoc's text, the closing marker's indentation taken off each line; nowdoc?"""
    opener = _HEREDOC_OPENER.match(source)
    if opener is None or not source.endswith(opener["label"]):  # the tokenizer matched both
        raise ValueError("is not a heredoc")
    # The closing marker's indentation: the spaces and tabs before the label that ends it.
    head = source[: -len(opener["label"])]
    body_end = len(head.rstrip(" \t"))
    body, indent = source[opener.end() : body_end], head[body_end:]
    body = body[: -len(m[0])] if (m := re.search(r"(?:\r\n|\r|\n)\Z", body)) else body
    lines = _LINES.split(body)
    if any(line.strip(" \t") and not line.startswith(indent) for line in lines[::2]):
        raise ValueError("is a heredoc with a line indented less than its closing marker")
    lines[::2] = [line[len(indent) :] for line in lines[::2]]
    return "".join(lines), opener["quote"] == "'"


def _escape(m: re.Match[bytes], heredoc: bool) -> bytes:
    simple, octal, hexa, code = m.groups()
    if simple is not None:
        return m[0] if heredoc and simple == b'"' else bytes((_SIMPLE[simple[0]],))
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))  # PHP keeps the low byte of "\400"
    if hexa is not None:
        return bytes((int(hexa, 16),))
    if int(code, 16) > 0x10FFFF:
        raise ValueError("has a \\u{...} escape beyond U+10FFFF")
    return chr(int(code, 16)).encode("utf-8", "surrogatepass")


def _expression(toks: list[_Tok]) -> str:
    """String literals joined by "." (parentheses allowed); ValueError for anything else."""
    parts, depth, operand = [], 0, True
    for kind, text, _ in toks:
        if operand and text == "(" and kind == "op":
            depth += 1
        elif operand and kind == "str":
            parts.append(_literal(text))
            operand = False
        elif not operand and kind == "op" and text == ".":
            operand = True
        elif not operand and kind == "op" and text == ")" and depth:
            depth -= 1
        elif kind == "str":
            raise ValueError("is not one expression")
        else:
            what = {"var": "the variable", "name": "the name", "num": "the number"}.get(kind)
            raise ValueError(f"uses {what or 'the operator'} {text[:40]!r}")
    if not toks or operand or depth:
        raise ValueError("is empty or incomplete" if not toks or operand else "has an unclosed '('")
    return "".join(parts)


class _Stream:
    """Tokens with one of look-ahead; an unterminated string ends the stream."""

    def __init__(self, src: str) -> None:
        self._it = _tokens(src, 0)
        self._ahead: _Tok | None = None

    def next(self) -> _Tok | None:
        if self._ahead is not None:
            tok, self._ahead = self._ahead, None
            return tok
        try:
            return next(self._it, None)
        except _Unterminated:
            return None

    def peek(self) -> _Tok | None:
        if self._ahead is None:
            self._ahead = self.next()
        return self._ahead

    def through(self, closer: str) -> tuple[list[list[_Tok]], bool]:
        """Tokens up to the ``closer`` that balances what is open, split at its top-level
        commas (a call's arguments), and whether the closer came."""
        args: list[list[_Tok]] = [[]]
        depth = 0
        while (tok := self.next()) is not None:
            if tok[0] == "op" and tok[1] in "([{":
                depth += 1
            elif tok[0] == "op" and tok[1] in ")]}":
                if depth == 0:
                    return args, tok[1] == closer
                depth -= 1
            elif depth == 0 and tok[0] == "op" and tok[1] == ",":
                args.append([])
                continue
            args[-1].append(tok)
        return args, False


def scan(src: str) -> list[Define]:
    """Every ``define()`` call whose name is a constant string, in source order."""
    found: list[Define] = []
    stream = _Stream(src)
    # One per open "{" or "if (...):": does code in it (or in one around it) run only
    # sometimes? Kept cumulative so that a define need not look at every level.
    blocks: list[bool] = []
    braceless: list[int] = []  # depths at which a braceless "if (...) stmt;" runs to its ";"
    pending = False  # a function or class keyword: the next "{" opens a body
    shortcut = False  # this statement has passed "&&", "||", "?", "or", ...
    prev, line, line_pos = "", 1, 0
    while (tok := stream.next()) is not None:
        kind, text, start = tok
        word = text.lower() if kind == "name" else text
        keyword = kind == "name" and prev not in ("->", "?->", "::")
        if kind == "op" and text in ";{}":
            if text == "{":
                blocks.append(pending or bool(blocks and blocks[-1]))
            elif text == "}" and blocks:
                blocks.pop()
            # Depths only grow along the list: ending statements pop from its end.
            while braceless and braceless[-1] >= len(blocks) + (text != ";"):
                braceless.pop()
            pending = shortcut = False
        elif word in _SHORT_CIRCUIT and (kind == "op" or keyword):
            shortcut = True
        elif keyword and word in _CONTROL:
            if _is(stream.peek(), "("):
                stream.next()
                stream.through(")")
            _open_branch(stream, blocks, braceless, word not in ("elseif", "catch"))
        elif keyword and word in _BARE_CONTROL:
            if not _is(stream.peek(), "if"):  # "else if": the "if" opens the branch
                _open_branch(stream, blocks, braceless, False)
        elif keyword and word in _ALT_END and blocks:
            blocks.pop()
        elif keyword and word in _BODY:
            pending = True
        elif keyword and word == "fn":  # "fn() => expr" runs when called, up to its ";"
            braceless.append(len(blocks))
        elif (
            word in ("define", "\\define")
            and prev not in _NOT_A_CALL_AFTER
            and _is(stream.peek(), "(")
        ):
            stream.next()
            line += len(_LINES.findall(src, line_pos, start))
            line_pos = start
            conditional = bool(blocks and blocks[-1]) or bool(braceless) or shortcut or pending
            define = _define(*stream.through(")"), line, conditional)
            if define is not None:
                found.append(define)
            word = ")"
        prev = word
    return found


def _is(tok: _Tok | None, text: str) -> bool:
    return tok is not None and tok[1].lower() == text and tok[0] in ("op", "name")


def _open_branch(stream: _Stream, blocks: list[bool], braceless: list[int], alt: bool) -> None:
    """After ``if (...)``, ``else``...: what follows runs sometimes; ``alt``: ":" opens a block."""
    if _is(stream.peek(), "{"):
        stream.next()
        blocks.append(True)
    elif _is(stream.peek(), ":"):  # "if (...): ... endif;" ("else:" goes on in the if's)
        stream.next()
        if alt:
            blocks.append(True)
    else:
        braceless.append(len(blocks))


def _define(args: list[list[_Tok]], closed: bool, line: int, conditional: bool) -> Define | None:
    """The call whose arguments are ``args``, or None when its name is not a constant string."""
    named: dict[str, list[_Tok]] = {}
    positional: list[list[_Tok]] = []
    for arg in args:  # PHP 8 named arguments: define(constant_name: ..., value: ...)
        if len(arg) > 2 and arg[0][0] == "name" and arg[1][1] == ":":
            named[arg[0][1].lower()] = arg[2:]
        else:
            positional.append(arg)
    name_arg = positional[0] if positional else named.get("constant_name")
    value_arg = positional[1] if len(positional) > 1 else named.get("value")
    try:
        name = _expression(name_arg or [])
    except ValueError:
        return None  # define($name, ...) names whatever PHP computes
    if not closed:  # a parse error for PHP; a file cut at the read limit ends so too
        return Define(name, None, "the call is not closed", line, conditional)
    try:
        return Define(name, _expression(value_arg or []), "", line, conditional)
    except ValueError as exc:
        return Define(name, None, f"the value {exc}", line, conditional)


def value_of(defines: list[Define], name: str) -> str | None:
    """What PHP would define ``name`` as, None when nothing defines it.

    A top-level define wins over any later one (PHP keeps the first). Defines that
    run only sometimes and come before it may win instead; when they disagree, or
    one of them is not a constant string, only a run of the shop could tell: a
    CollectError that names the lines.
    """
    ours = [d for d in defines if d.name == name]
    first = next((i for i, d in enumerate(ours) if not d.conditional), len(ours) - 1)
    candidates = ours[: first + 1]
    for d in candidates:
        if d.value is None:
            raise CollectError(f"{name} (line {d.line}) cannot be read statically: {d.problem}")
    if len({d.value for d in candidates}) > 1:
        *rest, last = [str(n) for n in sorted({d.line for d in candidates})]
        listed = f"lines {', '.join(rest)} and {last}" if rest else f"line {last}"
        raise CollectError(f"{name} is defined differently on {listed}, chosen only at run time")
    return candidates[0].value if candidates else None
