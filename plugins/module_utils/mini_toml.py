# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal, read-only TOML reader for containers/storage's storage.conf.

Hosts run Python 3.8+ with only the standard library (tomllib is 3.11+), and the one file we
must read when Podman itself fails (at 0 free inodes) is storage.conf. That file uses a small
subset of TOML, which is all this reader understands: tables and dotted tables, dotted keys,
basic and literal strings (single- and multi-line), booleans, integers, floats, arrays
(possibly spanning lines) and comments. Anything else raises TomlError with the line number.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from typing import Any, Dict, List, Tuple
except ImportError:  # pragma: no cover - typing is in the stdlib of every supported Python
    pass


class TomlError(ValueError):
    """The text is not TOML this reader understands."""


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INT = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)$")
_FLOAT = re.compile(r"[+-]?[0-9][0-9_]*(\.[0-9_]+)?([eE][+-]?[0-9]+)?$")
_BARE_VALUE = re.compile(r"[^\s,\]\}#]+")
_ESCAPES = {'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', '"': '"', '\\': '\\'}


class _Cursor:
    """Position in the document; errors name the line."""

    def __init__(self, text):
        # type: (str) -> None
        self.text = text
        self.pos = 0

    def line(self):
        # type: () -> int
        return self.text.count("\n", 0, self.pos) + 1

    def error(self, message):
        # type: (str) -> TomlError
        return TomlError("line %d: %s" % (self.line(), message))

    def peek(self, n=1):
        # type: (int) -> str
        return self.text[self.pos:self.pos + n]

    def eof(self):
        # type: () -> bool
        return self.pos >= len(self.text)

    def skip_ws(self):
        # type: () -> None
        while not self.eof() and self.text[self.pos] in " \t":
            self.pos += 1

    def skip_comment(self):
        # type: () -> None
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def skip_ws_comments_newlines(self):
        # type: () -> None
        while not self.eof():
            self.skip_ws()
            self.skip_comment()
            if self.peek() in ("\n", "\r"):
                self.pos += 1
            else:
                return

    def end_of_line(self):
        # type: () -> None
        self.skip_ws()
        self.skip_comment()
        if self.eof():
            return
        if self.peek(2) == "\r\n":
            self.pos += 2
        elif self.peek() == "\n":
            self.pos += 1
        else:
            raise self.error("unexpected text %r after value" % self.text[self.pos:self.pos + 20])


def _parse_key(cur):
    # type: (_Cursor) -> List[str]
    parts = []  # type: List[str]
    while True:
        cur.skip_ws()
        ch = cur.peek()
        if ch == '"':
            parts.append(_parse_basic_string(cur))
        elif ch == "'":
            parts.append(_parse_literal_string(cur))
        else:
            m = _BARE_KEY.match(cur.text, cur.pos)
            if not m:
                raise cur.error("expected a key")
            parts.append(m.group(0))
            cur.pos = m.end()
        cur.skip_ws()
        if cur.peek() == ".":
            cur.pos += 1
            continue
        return parts


def _parse_basic_string(cur):
    # type: (_Cursor) -> str
    multiline = cur.peek(3) == '"""'
    cur.pos += 3 if multiline else 1
    if multiline and cur.peek() == "\n":
        cur.pos += 1
    out = []  # type: List[str]
    while True:
        if cur.eof():
            raise cur.error("unterminated string")
        if multiline and cur.peek(3) == '"""':
            cur.pos += 3
            return "".join(out)
        ch = cur.text[cur.pos]
        if not multiline and ch == '"':
            cur.pos += 1
            return "".join(out)
        if not multiline and ch == "\n":
            raise cur.error("newline in a single-line string")
        if ch == "\\":
            esc = cur.text[cur.pos + 1:cur.pos + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                cur.pos += 2
            elif esc in ("u", "U"):
                width = 4 if esc == "u" else 8
                digits = cur.text[cur.pos + 2:cur.pos + 2 + width]
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    raise cur.error("bad unicode escape")
                cur.pos += 2 + width
            elif multiline and esc in ("\n", " ", "\t", "\r"):
                # line-ending backslash: trim the newline and following whitespace
                cur.pos += 1
                while not cur.eof() and cur.text[cur.pos] in " \t\r\n":
                    cur.pos += 1
            else:
                raise cur.error("bad escape \\%s" % esc)
            continue
        out.append(ch)
        cur.pos += 1


def _parse_literal_string(cur):
    # type: (_Cursor) -> str
    if cur.peek(3) == "'''":
        cur.pos += 3
        if cur.peek() == "\n":
            cur.pos += 1
        end = cur.text.find("'''", cur.pos)
        if end < 0:
            raise cur.error("unterminated literal string")
        value = cur.text[cur.pos:end]
        cur.pos = end + 3
        return value
    cur.pos += 1
    end = cur.text.find("'", cur.pos)
    nl = cur.text.find("\n", cur.pos)
    if end < 0 or (0 <= nl < end):
        raise cur.error("unterminated literal string")
    value = cur.text[cur.pos:end]
    cur.pos = end + 1
    return value


def _parse_array(cur):
    # type: (_Cursor) -> List[Any]
    cur.pos += 1  # [
    items = []  # type: List[Any]
    while True:
        cur.skip_ws_comments_newlines()
        if cur.peek() == "]":
            cur.pos += 1
            return items
        items.append(_parse_value(cur))
        cur.skip_ws_comments_newlines()
        if cur.peek() == ",":
            cur.pos += 1
        elif cur.peek() == "]":
            cur.pos += 1
            return items
        else:
            raise cur.error("expected ',' or ']' in array")


def _parse_inline_table(cur):
    # type: (_Cursor) -> Dict[str, Any]
    cur.pos += 1  # {
    table = {}  # type: Dict[str, Any]
    cur.skip_ws()
    if cur.peek() == "}":
        cur.pos += 1
        return table
    while True:
        key = _parse_key(cur)
        cur.skip_ws()
        if cur.peek() != "=":
            raise cur.error("expected '=' in inline table")
        cur.pos += 1
        cur.skip_ws()
        _assign(cur, table, key, _parse_value(cur))
        cur.skip_ws()
        if cur.peek() == ",":
            cur.pos += 1
            continue
        if cur.peek() == "}":
            cur.pos += 1
            return table
        raise cur.error("expected ',' or '}' in inline table")


def _parse_value(cur):
    # type: (_Cursor) -> Any
    cur.skip_ws()
    ch = cur.peek()
    if ch == '"':
        return _parse_basic_string(cur)
    if ch == "'":
        return _parse_literal_string(cur)
    if ch == "[":
        return _parse_array(cur)
    if ch == "{":
        return _parse_inline_table(cur)
    m = _BARE_VALUE.match(cur.text, cur.pos)
    if not m:
        raise cur.error("expected a value")
    word = m.group(0)
    cur.pos = m.end()
    if word == "true":
        return True
    if word == "false":
        return False
    if _INT.match(word):
        return int(word.replace("_", ""))
    if word.startswith(("0x", "0o", "0b")):
        try:
            return int(word.replace("_", ""), 0)
        except ValueError:
            raise cur.error("bad integer %r" % word)
    if _FLOAT.match(word):
        return float(word.replace("_", ""))
    raise cur.error("unsupported value %r" % word)


def _descend(cur, root, path):
    # type: (_Cursor, Dict[str, Any], List[str]) -> Dict[str, Any]
    node = root
    for part in path:
        child = node.setdefault(part, {})
        if isinstance(child, list) and child and isinstance(child[-1], dict):
            child = child[-1]  # an array of tables: keys go to its last element
        if not isinstance(child, dict):
            raise cur.error("key %r is not a table" % ".".join(path))
        node = child
    return node


def _assign(cur, table, key, value):
    # type: (_Cursor, Dict[str, Any], List[str], Any) -> None
    parent = _descend(cur, table, key[:-1])
    if key[-1] in parent:
        raise cur.error("duplicate key %r" % ".".join(key))
    parent[key[-1]] = value


def loads(text):
    # type: (str) -> Dict[str, Any]
    """Parse TOML text into nested dicts; raise TomlError on what it cannot read."""
    cur = _Cursor(text)
    root = {}  # type: Dict[str, Any]
    current = root
    while True:
        cur.skip_ws_comments_newlines()
        if cur.eof():
            return root
        if cur.peek(2) == "[[":
            cur.pos += 2
            path = _parse_key(cur)
            if cur.peek(2) != "]]":
                raise cur.error("expected ']]'")
            cur.pos += 2
            parent = _descend(cur, root, path[:-1])
            array = parent.setdefault(path[-1], [])
            if not isinstance(array, list):
                raise cur.error("key %r is not an array of tables" % ".".join(path))
            current = {}
            array.append(current)
        elif cur.peek() == "[":
            cur.pos += 1
            path = _parse_key(cur)
            if cur.peek() != "]":
                raise cur.error("expected ']'")
            cur.pos += 1
            current = _descend(cur, root, path)
        else:
            key = _parse_key(cur)
            cur.skip_ws()
            if cur.peek() != "=":
                raise cur.error("expected '=' after key %r" % ".".join(key))
            cur.pos += 1
            _assign(cur, current, key, _parse_value(cur))
        cur.end_of_line()


def get_path(doc, dotted, default=None):
    # type: (Dict[str, Any], Tuple[str, ...], Any) -> Any
    """doc['a']['b']['c'] for ('a', 'b', 'c'), or default when any level is missing."""
    node = doc  # type: Any
    for part in dotted:
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
