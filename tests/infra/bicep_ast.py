"""A small Bicep parser for the checks in this folder.

Why not pycep (which checkov uses)? It loses the difference between a string literal and a
reference (`'p'` and `p` both come out as "p"), and it parses `a > 0 ? x : y` as `a > (0 ? x : y)`.
A checker that compares values with Azure's enums and bounds needs both right, so this module
reads the subset of Bicep that infra/ uses into plain dataclasses: declarations (targetScope,
param, var, resource, module, output), decorators, objects, arrays, strings with interpolation,
numbers, booleans, null, references, member and index access, function calls, unary, binary and
ternary operators, `for` loops and `if` conditions. Anything else is a ParseError naming the line,
so an unsupported construct fails loudly instead of being skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union


class ParseError(ValueError):
    """The file uses Bicep this parser does not read; the message names file and line."""


# --- expressions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    """A literal: str, int, bool or None."""

    value: Any
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Interp:
    """An interpolated string: parts are str or expressions."""

    parts: tuple
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Ref:
    name: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Obj:
    items: tuple  # ((key: str | Interp, value), ...)
    line: int = field(default=0, compare=False)

    def get(self, key: str) -> Any:
        for k, v in self.items:
            if k == key:
                return v
        return None

    def keys(self) -> list:
        return [k for k, _ in self.items]


@dataclass(frozen=True)
class Arr:
    items: tuple
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Member:
    obj: Any
    name: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Index:
    obj: Any
    index: Any
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    name: str  # "concat", or "sys.concat", or "az.resourceGroup"
    args: tuple
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Any
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    op: str
    left: Any
    right: Any
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Ternary:
    cond: Any
    then: Any
    other: Any
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class For:
    names: tuple
    iterable: Any
    body: Any
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class IfBody:
    """`if (cond) { ... }`: the body of a conditional resource or module."""

    cond: Any
    body: Any
    line: int = field(default=0, compare=False)


Expr = Union[Lit, Interp, Ref, Obj, Arr, Member, Index, Call, Unary, Binary, Ternary, For, IfBody]


# --- declarations ----------------------------------------------------------------------------


@dataclass
class Decl:
    kind: str  # param, var, resource, module, output, targetScope, metadata
    name: str
    line: int
    decorators: list[Call] = field(default_factory=list)
    type: str = ""  # param/output type; resource "Type@api"; module path
    value: Any = None  # default / value / body
    existing: bool = False

    def decorator(self, name: str) -> Call | None:
        for d in self.decorators:
            if d.name.split(".")[-1] == name:
                return d
        return None

    @property
    def body(self) -> Obj | None:
        """The object body of a resource or module, through `if` and `for`."""
        value = self.value
        while isinstance(value, (IfBody, For)):
            value = value.body
        return value if isinstance(value, Obj) else None

    @property
    def condition(self) -> Any:
        return self.value.cond if isinstance(self.value, IfBody) else None


@dataclass
class BicepFile:
    path: Path
    decls: list[Decl]

    def of(self, kind: str) -> dict[str, Decl]:
        return {d.name: d for d in self.decls if d.kind == kind}

    @property
    def params(self) -> dict[str, Decl]:
        return self.of("param")

    @property
    def variables(self) -> dict[str, Decl]:
        return self.of("var")

    @property
    def resources(self) -> dict[str, Decl]:
        return self.of("resource")

    @property
    def modules(self) -> dict[str, Decl]:
        return self.of("module")

    @property
    def outputs(self) -> dict[str, Decl]:
        return self.of("output")

    @property
    def target_scope(self) -> str:
        for d in self.decls:
            if d.kind == "targetScope":
                return d.value.value
        return "resourceGroup"


# --- tokens ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<nl>\r?\n)
  | (?P<ws>[ \t]+)
  | (?P<comment>//[^\n]*)
  | (?P<block>/\*.*?\*/)
  | (?P<multi>'''.*?''')
  | (?P<num>\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\?\?|==|!=|=~|!~|<=|>=|&&|\|\||=>|\.\?|[{}\[\]().,:?=<>!+\-*/%@|])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Tok:
    kind: str  # nl, num, ident, op, str, multi, eof
    text: str
    line: int
    value: Any = None  # for str: list of parts (str or token lists)


def _string(source: str, start: int, line: int, path: Path) -> tuple[Tok, int, int]:
    """Read a single-quoted string at source[start] (the quote), with ${...} interpolation."""
    parts: list = []
    buf: list[str] = []
    i = start + 1
    escapes = {"'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "$": "$"}
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            nxt = source[i + 1 : i + 2]
            if nxt == "u":
                end = source.index("}", i)
                buf.append(chr(int(source[i + 3 : end], 16)))
                i = end + 1
                continue
            if nxt not in escapes:
                raise ParseError(f"{path}:{line}: unknown escape \\{nxt}")
            buf.append(escapes[nxt])
            i += 2
            continue
        if ch == "'":
            if buf:
                parts.append("".join(buf))
            return Tok("str", source[start : i + 1], line, parts), i + 1, line
        if ch == "\n":
            raise ParseError(f"{path}:{line}: unterminated string")
        if ch == "$" and source[i + 1 : i + 2] == "{":
            if buf:
                parts.append("".join(buf))
                buf = []
            depth, j = 1, i + 2
            while depth:
                if j >= len(source):
                    raise ParseError(f"{path}:{line}: unterminated interpolation")
                if source[j] == "'":
                    _, j, _ = _string(source, j, line, path)
                    continue
                depth += {"{": 1, "}": -1}.get(source[j], 0)
                j += 1
            parts.append(_tokens(source[i + 2 : j - 1], path, line))
            i = j
            continue
        buf.append(ch)
        i += 1
    raise ParseError(f"{path}:{line}: unterminated string")


def _tokens(source: str, path: Path, line: int = 1) -> list[Tok]:
    out: list[Tok] = []
    i = 0
    while i < len(source):
        if source[i] == "'" and not source.startswith("'''", i):
            tok, i, line = _string(source, i, line, path)
            out.append(tok)
            continue
        m = _TOKEN.match(source, i)
        if not m:
            raise ParseError(f"{path}:{line}: unexpected character {source[i]!r}")
        kind, text = m.lastgroup, m.group()
        if kind == "nl":
            out.append(Tok("nl", text, line))
            line += 1
        elif kind == "block":
            line += text.count("\n")
        elif kind == "multi":
            out.append(Tok("multi", text, line, [text[3:-3].lstrip("\r\n")]))
            line += text.count("\n")
        elif kind in ("ws", "comment"):
            pass
        else:
            out.append(Tok(kind, text, line))
        i = m.end()
    out.append(Tok("eof", "", line))
    return out


# --- parser ----------------------------------------------------------------------------------

_BINARY = [  # loosest first
    ("??",),
    ("||",),
    ("&&",),
    ("==", "!=", "=~", "!~"),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/", "%"),
]


class _Parser:
    def __init__(self, tokens: list[Tok], path: Path) -> None:
        self.toks = tokens
        self.i = 0
        self.path = path

    # helpers
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def error(self, message: str) -> ParseError:
        return ParseError(f"{self.path}:{self.tok.line}: {message} (at {self.tok.text!r})")

    def at(self, text: str, kind: str | None = None) -> bool:
        return self.tok.text == text and (kind is None or self.tok.kind == kind) and self.tok.kind != "str"

    def take(self, text: str) -> Tok:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        tok = self.tok
        self.i += 1
        return tok

    def skip_nl(self) -> None:
        while self.tok.kind == "nl":
            self.i += 1

    def ident(self) -> str:
        if self.tok.kind != "ident":
            raise self.error("expected a name")
        name = self.tok.text
        self.i += 1
        return name

    # file
    def parse_file(self) -> list[Decl]:
        decls: list[Decl] = []
        decorators: list[Call] = []
        while True:
            self.skip_nl()
            if self.tok.kind == "eof":
                if decorators:
                    raise self.error("decorator without a declaration")
                return decls
            if self.at("@"):
                self.i += 1
                line = self.tok.line
                call = self.postfix(Ref(self.ident(), line))
                if isinstance(call, Ref):
                    call = Call(call.name, (), line)
                if not isinstance(call, Call):
                    raise self.error("a decorator must be a call")
                decorators.append(call)
                continue
            keyword = self.ident()
            line = self.toks[self.i - 1].line
            decl = self.declaration(keyword, line)
            decl.decorators = decorators
            decorators = []
            decls.append(decl)
            if self.tok.kind not in ("nl", "eof"):
                raise self.error("expected the end of the line")

    def declaration(self, keyword: str, line: int) -> Decl:
        if keyword == "targetScope":
            self.take("=")
            return Decl("targetScope", "targetScope", line, value=self.expr())
        if keyword == "metadata":
            name = self.ident()
            self.take("=")
            return Decl("metadata", name, line, value=self.expr())
        if keyword in ("param", "output"):
            name = self.ident()
            type_name = self.type_expr()
            value = None
            if self.at("="):
                self.i += 1
                value = self.expr()
            elif keyword == "output":
                raise self.error("an output needs a value")
            return Decl(keyword, name, line, type=type_name, value=value)
        if keyword == "var":
            name = self.ident()
            self.take("=")
            return Decl("var", name, line, value=self.expr())
        if keyword in ("resource", "module"):
            name = self.ident()
            if self.tok.kind != "str":
                raise self.error(f"expected the {keyword} type or path in quotes")
            type_text = "".join(p for p in self.tok.value if isinstance(p, str))
            self.i += 1
            existing = False
            if self.at("existing", "ident"):
                existing = True
                self.i += 1
            self.take("=")
            return Decl(keyword, name, line, type=type_text, value=self.body(), existing=existing)
        raise ParseError(f"{self.path}:{line}: unsupported declaration {keyword!r}")

    def type_expr(self) -> str:
        name = self.ident()
        while self.at("[") and self.toks[self.i + 1].text == "]":
            self.i += 2
            name += "[]"
        if self.at("?"):
            self.i += 1
            name += "?"
        return name

    def body(self) -> Any:
        line = self.tok.line
        if self.at("if", "ident") or self.tok.text == "if":
            self.i += 1
            self.take("(")
            cond = self.expr()
            self.take(")")
            return IfBody(cond, self.obj(), line)
        if self.at("["):
            return self.primary()
        return self.obj()

    # expressions
    def expr(self) -> Any:
        cond = self.binary(0)
        if self.at("?"):
            line = self.tok.line
            self.i += 1
            self.skip_nl()
            then = self.expr()
            self.skip_nl()
            self.take(":")
            self.skip_nl()
            other = self.expr()
            return Ternary(cond, then, other, line)
        return cond

    def binary(self, level: int) -> Any:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.tok.kind == "op" and self.tok.text in _BINARY[level]:
            op = self.tok.text
            line = self.tok.line
            self.i += 1
            self.skip_nl()
            left = Binary(op, left, self.binary(level + 1), line)
        return left

    def unary(self) -> Any:
        if self.at("!") or self.at("-"):
            op = self.tok.text
            line = self.tok.line
            self.i += 1
            return Unary(op, self.unary(), line)
        return self.postfix(self.primary())

    def postfix(self, node: Any) -> Any:
        while True:
            line = self.tok.line
            if self.at(".") or self.at(".?"):
                self.i += 1
                name = self.ident()
                if self.at("(") and isinstance(node, Ref):
                    node = Call(f"{node.name}.{name}", self.args(), line)
                else:
                    node = Member(node, name, line)
            elif self.at("["):
                self.i += 1
                self.skip_nl()
                index = self.expr()
                self.skip_nl()
                self.take("]")
                node = Index(node, index, line)
            elif self.at("(") and isinstance(node, Ref):
                node = Call(node.name, self.args(), line)
            elif self.at("!") and self.toks[self.i + 1].text not in ("=",):
                # non-null assertion `x!`: only when followed by something that ends an operand
                nxt = self.toks[self.i + 1]
                if nxt.kind in ("nl", "eof") or nxt.text in (".", ")", "]", "}", ",", ":"):
                    self.i += 1
                    continue
                return node
            else:
                return node

    def args(self) -> tuple:
        self.take("(")
        args = []
        self.skip_nl()
        while not self.at(")"):
            args.append(self.expr())
            self.skip_nl()
            if self.at(","):
                self.i += 1
                self.skip_nl()
        self.take(")")
        return tuple(args)

    def primary(self) -> Any:
        tok = self.tok
        line = tok.line
        if tok.kind == "num":
            self.i += 1
            return Lit(int(tok.text), line)
        if tok.kind in ("str", "multi"):
            self.i += 1
            return self.string(tok)
        if tok.kind == "ident":
            self.i += 1
            if tok.text in ("true", "false"):
                return Lit(tok.text == "true", line)
            if tok.text == "null":
                return Lit(None, line)
            if self.at("=>"):
                self.i += 1
                return Call("lambda", (Lit(tok.text), self.expr()), line)
            return Ref(tok.text, line)
        if self.at("{"):
            return self.obj()
        if self.at("["):
            self.i += 1
            self.skip_nl()
            if self.at("for", "ident"):
                return self.for_loop(line)
            items = []
            while not self.at("]"):
                items.append(self.expr())
                separated = self.at(",")
                if separated:
                    self.i += 1
                if not separated and self.tok.kind != "nl" and not self.at("]"):
                    raise self.error("expected a new line, ',' or ']' after an item")
                self.skip_nl()
            self.take("]")
            return Arr(tuple(items), line)
        if self.at("("):
            self.i += 1
            self.skip_nl()
            inner = self.expr()
            self.skip_nl()
            self.take(")")
            if self.at("=>"):
                self.i += 1
                return Call("lambda", (inner, self.expr()), line)
            return inner
        raise self.error("expected a value")

    def for_loop(self, line: int) -> For:
        self.take("for")
        if self.at("("):
            self.i += 1
            names = [self.ident()]
            while self.at(","):
                self.i += 1
                names.append(self.ident())
            self.take(")")
        else:
            names = [self.ident()]
        self.take("in")
        iterable = self.expr()
        self.take(":")
        body = self.body() if (self.at("if", "ident") or self.at("{")) else self.expr()
        self.skip_nl()
        self.take("]")
        return For(tuple(names), iterable, body, line)

    def obj(self) -> Obj:
        line = self.tok.line
        self.take("{")
        items = []
        self.skip_nl()
        while not self.at("}"):
            if self.tok.kind == "ident":
                key: Any = self.tok.text
                self.i += 1
            elif self.tok.kind == "str":
                key = self.string(self.tok)
                key = key.value if isinstance(key, Lit) else key
                self.i += 1
            else:
                raise self.error("expected a property name")
            if key == "resource" and self.tok.kind == "ident":
                raise self.error("nested resource declarations are not read by this checker; declare it at top level")
            self.take(":")
            items.append((key, self.expr()))
            if self.at(","):
                self.i += 1
            if self.tok.kind != "nl" and not self.at("}"):
                raise self.error("expected a new line or '}' after a property")
            self.skip_nl()
        self.take("}")
        return Obj(tuple(items), line)

    def string(self, tok: Tok) -> Any:
        parts = []
        for part in tok.value:
            if isinstance(part, str):
                parts.append(part)
            else:
                sub = _Parser(part, self.path)
                value = sub.expr()
                sub.skip_nl()
                if sub.tok.kind != "eof":
                    raise sub.error("unexpected text in interpolation")
                parts.append(value)
        if all(isinstance(p, str) for p in parts):
            return Lit("".join(parts), tok.line)
        return Interp(tuple(parts), tok.line)


def parse_text(text: str, path: Path = Path("<text>")) -> BicepFile:
    return BicepFile(path, _Parser(_tokens(text, path), path).parse_file())


def parse_file(path: Path) -> BicepFile:
    return parse_text(path.read_text(encoding="utf-8"), path)


def walk(node: Any):
    """Every expression node under node (itself included), depth first."""
    yield node
    if isinstance(node, Obj):
        for key, value in node.items:
            if isinstance(key, Interp):
                yield from walk(key)
            yield from walk(value)
    elif isinstance(node, (Arr,)):
        for item in node.items:
            yield from walk(item)
    elif isinstance(node, Interp):
        for part in node.parts:
            if not isinstance(part, str):
                yield from walk(part)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
    elif isinstance(node, Member):
        yield from walk(node.obj)
    elif isinstance(node, Index):
        yield from walk(node.obj)
        yield from walk(node.index)
    elif isinstance(node, Unary):
        yield from walk(node.operand)
    elif isinstance(node, Binary):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, Ternary):
        yield from walk(node.cond)
        yield from walk(node.then)
        yield from walk(node.other)
    elif isinstance(node, For):
        yield from walk(node.iterable)
        yield from walk(node.body)
    elif isinstance(node, IfBody):
        yield from walk(node.cond)
        yield from walk(node.body)
