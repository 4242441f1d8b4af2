"""Route templates in the Functions host's (ASP.NET Core) syntax, compiled once.

The host matches a request path against every HTTP function's template
(``items/{id:int}/{label?}``, ``files/{*path}``) with literals compared
case-insensitively, constraints that make a route *not match* rather than fail,
and a precedence order so ``items/new`` beats ``items/{id}`` whatever the
declaration order. Templates are turned into one anchored regex each at start-up
so a request costs a few regex attempts, nothing more.
"""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable, Generic, Iterable, Mapping, Optional, Sequence, TypeVar
from urllib.parse import unquote

Check = Callable[[str], bool]
T = TypeVar("T")


class RouteTemplateError(ValueError):
    """A route template the host would refuse to index."""


def _int_range(low: int, high: int) -> Check:
    def check(value: str) -> bool:
        if not re.fullmatch(r"[+-]?\d+", value.strip()):
            return False
        return low <= int(value) <= high

    return check


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    """Accept the formats .NET's Guid.TryParse accepts: D, N, B and P."""
    text = value
    if len(text) == 38 and (text[0], text[-1]) in {("{", "}"), ("(", ")")}:
        text = text[1:-1]
    if len(text) not in (32, 36):
        return False
    if len(text) == 36 and [i for i, c in enumerate(text) if c == "-"] != [8, 13, 18, 23]:
        return False
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _numeric_bound(compare: Callable[[int], bool]) -> Check:
    def check(value: str) -> bool:
        return bool(re.fullmatch(r"[+-]?\d+", value)) and compare(int(value))

    return check


def _constraint(name: str, args: Optional[str]) -> Check:
    """Build the check for one inline constraint, e.g. ``int`` or ``length(2,8)``."""
    numbers = [int(a) for a in args.split(",")] if args and name != "regex" else []
    simple: dict[str, Check] = {
        "int": _int_range(-(2**31), 2**31 - 1),
        "long": _int_range(-(2**63), 2**63 - 1),
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": _is_guid,
        "alpha": lambda v: bool(re.fullmatch(r"[a-zA-Z]+", v)),
        "decimal": _is_float,
        "double": _is_float,
        "float": _is_float,
        "datetime": _is_datetime,
        "required": lambda v: v != "",
    }
    if name in simple and args is None:
        return simple[name]
    if name == "regex" and args is not None:
        pattern = re.compile(args, re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    if name == "minlength" and len(numbers) == 1:
        return lambda v: len(v) >= numbers[0]
    if name == "maxlength" and len(numbers) == 1:
        return lambda v: len(v) <= numbers[0]
    if name == "length" and len(numbers) == 1:
        return lambda v: len(v) == numbers[0]
    if name == "length" and len(numbers) == 2:
        return lambda v: numbers[0] <= len(v) <= numbers[1]
    if name == "min" and len(numbers) == 1:
        return _numeric_bound(lambda n: n >= numbers[0])
    if name == "max" and len(numbers) == 1:
        return _numeric_bound(lambda n: n <= numbers[0])
    if name == "range" and len(numbers) == 2:
        return _numeric_bound(lambda n: numbers[0] <= n <= numbers[1])
    raise RouteTemplateError(f"unsupported route constraint {name!r}")


def _split_constraints(text: str) -> list[str]:
    """Split ``int:min(1):regex(^a:b$)`` on colons outside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == ":" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class _Parameter:
    name: str
    optional: bool
    catch_all: bool
    default: Optional[str]
    checks: tuple[Check, ...]


def _parse_parameter(body: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    optional = body.endswith("?")
    body = body.rstrip("?")
    default: Optional[str] = None
    name_and_constraints = body
    # A default follows the last constraint: {id:int=5}. Regex constraints may hold
    # '=' themselves, so only split outside parentheses.
    depth = 0
    for index, char in enumerate(body):
        depth += char == "("
        depth -= char == ")"
        if char == "=" and depth == 0:
            name_and_constraints, default = body[:index], body[index + 1 :]
            break
    name, *constraint_texts = _split_constraints(name_and_constraints)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"invalid route parameter name {name!r}")
    checks = []
    for text in constraint_texts:
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", text, re.DOTALL)
        if not match:
            raise RouteTemplateError(f"invalid route constraint {text!r}")
        checks.append(_constraint(match.group(1).lower(), match.group(2)))
    return _Parameter(name, optional or default is not None, catch_all, default, tuple(checks))


def _parse_segment(segment: str) -> list[str | _Parameter]:
    """A segment is literals and ``{parameters}``; ``{{``/``}}`` are literal braces."""
    parts: list[str | _Parameter] = []
    literal: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if segment.startswith("{{", index) or segment.startswith("}}", index):
            literal.append(char)
            index += 2
        elif char == "{":
            end = segment.find("}", index)
            # A regex constraint may contain '}' (quantifiers); take the last closing
            # brace that leaves the parentheses balanced.
            while end != -1 and segment[index:end].count("(") != segment[index:end].count(")"):
                end = segment.find("}", end + 1)
            if end == -1:
                raise RouteTemplateError(f"unclosed '{{' in segment {segment!r}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_parse_parameter(segment[index + 1 : end]))
            index = end + 1
        elif char == "}":
            raise RouteTemplateError(f"unmatched '}}' in segment {segment!r}")
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _segment_precedence(parts: Sequence[str | _Parameter]) -> int:
    """ASP.NET's inbound precedence digit: lower is tried first."""
    if len(parts) > 1:
        return 2
    part = parts[0]
    if isinstance(part, str):
        return 1
    if part.catch_all:
        return 5
    return 3 if part.checks else 4


@dataclass(frozen=True)
class CompiledRoute(Generic[T]):
    """One template, ready to match a decoded request path."""

    template: str
    target: T
    methods: Optional[frozenset[str]]
    precedence: tuple[int, ...]
    _regex: re.Pattern[str] = field(repr=False)
    _parameters: tuple[_Parameter, ...] = field(repr=False)

    def match(self, path: str) -> Optional[dict[str, str]]:
        found = self._regex.fullmatch(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, parameter in enumerate(self._parameters):
            value = found.group(f"p{index}")
            if value is None or value == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                elif not parameter.optional and not parameter.catch_all:
                    return None
                continue
            if not all(check(value) for check in parameter.checks):
                return None
            values[parameter.name] = value
        return values


def compile_route(prefix: str, template: str, target: T, methods: Optional[Iterable[str]]) -> CompiledRoute[T]:
    """Compile ``prefix/template`` into an anchored, case-insensitive regex."""
    segments = [s for s in prefix.strip("/").split("/") if s] if prefix else []
    parsed_prefix = [[s] for s in segments]
    template_text = template.strip().lstrip("~").strip("/")
    parsed = [_parse_segment(s) for s in template_text.split("/")] if template_text else []
    if any(not parts for parts in parsed):
        raise RouteTemplateError(f"empty segment in route template {template!r}")
    all_segments: list[list[str | _Parameter]] = parsed_prefix + parsed  # type: ignore[operator]
    parameters: list[_Parameter] = []
    pattern: list[str] = []
    for position, parts in enumerate(all_segments):
        is_last = position == len(all_segments) - 1
        lone = parts[0] if len(parts) == 1 else None
        if isinstance(lone, _Parameter) and lone.catch_all:
            if not is_last:
                raise RouteTemplateError(f"catch-all must be the last segment in {template!r}")
            pattern.append(f"(?:/(?P<p{len(parameters)}>.*))?")
            parameters.append(lone)
            continue
        if isinstance(lone, _Parameter) and lone.optional:
            # Only trailing optionals can be left out, as in ASP.NET.
            pattern.append(f"(?:/(?P<p{len(parameters)}>[^/]+))?")
            parameters.append(lone)
            continue
        piece = ["/"]
        for index, part in enumerate(parts):
            if isinstance(part, str):
                piece.append(re.escape(part))
            else:
                if part.catch_all:
                    raise RouteTemplateError(f"catch-all must be a whole segment in {template!r}")
                lazy = "?" if index < len(parts) - 1 else ""
                piece.append(f"(?P<p{len(parameters)}>[^/]+{lazy})")
                parameters.append(part)
        pattern.append("".join(piece))
    if any(p.optional and not p.catch_all for p in parameters):
        first_optional = next(i for i, p in enumerate(parameters) if p.optional and not p.catch_all)
        if any(not p.optional and not p.catch_all for p in parameters[first_optional:]):
            raise RouteTemplateError(f"an optional parameter must end the template {template!r}")
    regex = re.compile("".join(pattern) + "/?" if pattern else "/?", re.IGNORECASE | re.DOTALL)
    return CompiledRoute(
        template="/".join(filter(None, [prefix.strip("/"), template_text])),
        target=target,
        methods=frozenset(m.upper() for m in methods) if methods else None,
        precedence=tuple(_segment_precedence(parts) for parts in parsed),
        _regex=regex,
        _parameters=tuple(parameters),
    )


def decode_path(raw_path: str) -> str:
    """Percent-decode each segment but keep an encoded '/' inside a segment, as Kestrel does."""
    if "%" not in raw_path:
        return raw_path
    return "/".join(unquote(s).replace("/", "%2F") for s in raw_path.split("/"))


class RouteTable(Generic[T]):
    """Routes in precedence order; the first whose path and method both match wins.

    A path that matches only with another method is a 404, as on the real host
    (the method is just another route constraint there).
    """

    def __init__(self, routes: Iterable[CompiledRoute[T]]) -> None:
        self._routes = sorted(routes, key=lambda r: (r.precedence, r.template.lower()))

    def __iter__(self):
        return iter(self._routes)

    def resolve(self, method: str, path: str) -> Optional[tuple[CompiledRoute[T], Mapping[str, str]]]:
        for route in self._routes:
            if route.methods is not None and method not in route.methods:
                continue
            values = route.match(path)
            if values is not None:
                return route, values
        return None
