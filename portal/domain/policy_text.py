"""Policy TOML as text: the checker shared by ``policy check`` and the admin editor, its
fingerprint and the difference between two versions.

Pure functions over strings; ``load_policy`` stays the one judge of what a policy may say.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass

from portal.domain.policy import Policy, PolicyError, load_policy

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ASSIGN = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-]+)\s*=""")
_KEY_TOKEN = re.compile(r"""^['"]?([A-Za-z0-9_][A-Za-z0-9_.\-]*)""")


@dataclass(frozen=True)
class PolicyProblem:
    """Why a policy text cannot be used, and the line it points at (1-based) when one can be named."""

    message: str
    line: int | None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def checksum(text: str) -> str:
    """sha256 of the text exactly as stored (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_policy_text(text: str) -> tuple[Policy | None, PolicyProblem | None]:
    """The parsed policy, or the first problem with its line number."""
    try:
        return load_policy(text), None
    except PolicyError as exc:
        return None, PolicyProblem(exc.message, problem_line(text, exc.message))


def problem_line(text: str, message: str) -> int | None:
    """The line a ``PolicyError`` message is about: TOML syntax errors carry it; rule errors name a
    key (``window.days``), found here under its table header."""
    found = _TOML_LINE.search(message)
    if found:
        return int(found.group(1))
    rest = message.removeprefix("unknown key ").strip()
    token = _KEY_TOKEN.match(rest)
    if not token:
        return None
    lines = _key_lines(text)
    parts = token.group(1).rstrip(".:").split(".")
    while parts:  # the longest prefix that is written down somewhere
        line = lines.get(".".join(parts))
        if line:
            return line
        parts.pop()
    return None


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key (table headers and assignments) -> first line it is written on."""
    lines: dict[str, int] = {}
    table = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            table = ".".join(part.strip().strip("\"'") for part in header.group(1).split("."))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(raw)
        if assign:
            key = assign.group(1).strip("\"'")
            lines.setdefault(f"{table}.{key}" if table else key, number)
    return lines


def diff_text(old: str, new: str, old_name: str, new_name: str) -> list[str]:
    """A unified diff of two policy texts, one string per line (empty when they are the same)."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name, n=3
        )
    ]
