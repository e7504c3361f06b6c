"""Translatable text in pure code.

Domain functions return English message ids with named ``%(param)s``
placeholders; the web layer translates them at render time. ``N_`` only marks
a string for extraction (``pybabel extract -k N_``) and returns it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    return message


@dataclass(frozen=True)
class Text:
    """A message id plus its parameters, translated later."""

    msgid: str
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, translate: Callable[[str], str] = str) -> str:
        template = translate(self.msgid)
        return str(template % self.params) if self.params else template

    def to_dict(self) -> dict[str, Any]:
        return {"msgid": self.msgid, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Text:
        return cls(data["msgid"], dict(data.get("params") or {}))
