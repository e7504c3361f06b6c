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
        """The translated text; a parameter that is itself a ``Text`` is translated too."""
        template = translate(self.msgid)
        if not self.params:
            return template
        params = {k: v.render(translate) if isinstance(v, Text) else v for k, v in self.params.items()}
        return str(template % params)

    def to_dict(self) -> dict[str, Any]:
        params = {k: v.to_dict() if isinstance(v, Text) else v for k, v in self.params.items()}
        return {"msgid": self.msgid, "params": params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Text:
        params = {
            k: cls.from_dict(v) if isinstance(v, dict) and "msgid" in v else v
            for k, v in (data.get("params") or {}).items()
        }
        return cls(data["msgid"], params)
