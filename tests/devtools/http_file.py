"""Reads a .http file the way the REST Client extension does, for the parts requests.http uses:
file variables (``@name = value``), requests separated by ``###``, ``# @name`` to name a request,
``{{variable}}`` and ``{{request.response.body.$.field}}`` references, headers up to the first
blank line and the body after it. Syntax: https://github.com/Huachao/vscode-restclient#usage

The project's own convention on top: a ``# expect STATUS [ERROR_CODE]`` comment above the request
line says what the local stack answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

_REQUEST_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(\S+)(?:\s+HTTP/[\d.]+)?\s*$")
_FILE_VARIABLE = re.compile(r"^@([A-Za-z_][\w-]*)\s*=\s*(.*?)\s*$")
_NAME = re.compile(r"^(?:#|//)\s*@name\s+(\S+)\s*$")
_EXPECT = re.compile(r"^#\s*expect\s+(\d{3})(?:\s+(\w+))?\s*$")
_REFERENCE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


@dataclass
class HttpRequest:
    title: str
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    name: Optional[str] = None
    expect_status: Optional[int] = None
    expect_code: Optional[str] = None
    line: int = 0


@dataclass
class HttpFile:
    variables: dict[str, str]
    #: The comment line right above each file variable, e.g. the decoded JSON of a principal.
    variable_comments: dict[str, str]
    requests: list[HttpRequest]


def _is_comment(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith("#") or stripped.startswith("//")


def parse(text: str) -> HttpFile:
    variables: dict[str, str] = {}
    comments: dict[str, str] = {}
    requests: list[HttpRequest] = []
    blocks: list[tuple[int, list[str]]] = [(1, [])]
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("###"):
            blocks.append((number, [line]))
        else:
            blocks[-1][1].append(line)
    for start, lines in blocks:
        title = lines[0][3:].strip() if lines and lines[0].startswith("###") else ""
        name = status = code = None
        request: Optional[HttpRequest] = None
        in_body = False
        body: list[str] = []
        previous = ""
        for offset, line in enumerate(lines):
            if request is None:
                variable = _FILE_VARIABLE.match(line)
                if variable:
                    variables[variable.group(1)] = variable.group(2)
                    if previous.startswith("#"):
                        comments[variable.group(1)] = previous.lstrip("# ").strip()
                elif (found := _NAME.match(line)) is not None:
                    name = found.group(1)
                elif (found := _EXPECT.match(line)) is not None:
                    status, code = int(found.group(1)), found.group(2)
                elif (found := _REQUEST_LINE.match(line)) is not None:
                    request = HttpRequest(title, found.group(1), found.group(2), name=name,
                                          expect_status=status, expect_code=code, line=start + offset)
                previous = line
                continue
            if in_body:
                body.append(line)
            elif not line.strip():
                in_body = True
            elif not _is_comment(line):
                header, _, value = line.partition(":")
                request.headers.append((header.strip(), value.strip()))
        if request is not None:
            request.body = "\n".join(body).strip()
            requests.append(request)
    return HttpFile(variables, comments, requests)


def _json_path(document: Any, path: str) -> Any:
    """``$.a.b`` (the only JSONPath form requests.http uses)."""
    value = document
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def resolver(variables: dict[str, str], responses: dict[str, Any]) -> Callable[[str], str]:
    """Substitutes ``{{name}}`` (file variables, themselves resolved) and
    ``{{request.response.body.$.path}}`` (the named request's JSON response)."""

    def substitute(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            reference = match.group(1)
            if reference in variables:
                return substitute(variables[reference])
            request, _, rest = reference.partition(".response.body.")
            if rest and request in responses:
                return str(_json_path(responses[request], rest))
            raise KeyError(f"{{{{{reference}}}}} names no variable and no earlier named request")

        return _REFERENCE.sub(one, text)

    return substitute
