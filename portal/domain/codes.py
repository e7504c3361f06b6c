"""Short human codes: Crockford base32 with a mod-37 check character.

Used for RMA numbers (and pickup codes). Crockford's alphabet has no I, L, O
or U, and decoding treats I/L as 1 and O as 0, so codes survive being read
aloud or retyped; the check character catches a single wrong or swapped symbol
before any lookup.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_ALPHABET = ALPHABET + "*~$=U"
_DECODE = {c: i for i, c in enumerate(ALPHABET)}
_DECODE.update({"I": 1, "L": 1, "O": 0})


class CodeError(ValueError):
    """The text is not a well-formed code (bad symbol, length or check character)."""


def encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        out.append(ALPHABET[digit])
    if value:
        raise ValueError("value does not fit in the requested length")
    return "".join(reversed(out))


def check_char(value: int) -> str:
    return CHECK_ALPHABET[value % 37]


def new_code(symbols: int = 8) -> tuple[int, str]:
    """A random code of ``symbols`` base32 symbols (5 bits each) plus its check character."""
    value = secrets.randbits(5 * symbols)
    return value, encode(value, symbols) + check_char(value)


def normalise(text: str) -> str:
    """Upper-case, drop spaces, dashes and a known prefix's separator; map I/L/O."""
    cleaned = "".join(ch for ch in text.upper() if ch not in " -_.")
    return "".join("1" if ch in "IL" else "0" if ch == "O" else ch for ch in cleaned)


def parse(text: str, symbols: int = 8) -> str:
    """Validate a typed code (without any prefix) and return its canonical form."""
    cleaned = normalise(text)
    if len(cleaned) != symbols + 1:
        raise CodeError("wrong length")
    body, check = cleaned[:-1], cleaned[-1]
    value = 0
    for ch in body:
        if ch not in _DECODE:
            raise CodeError("unknown symbol")
        value = value * 32 + _DECODE[ch]
    if check != check_char(value):
        raise CodeError("check character does not match")
    return body + check


def group(code: str, size: int = 3) -> str:
    """Split for reading aloud: ``7KQ-2M9-XDC``."""
    return "-".join(code[i : i + size] for i in range(0, len(code), size))


RMA_PREFIX = "R"


def new_rma() -> str:
    """An RMA number: 40 random bits, e.g. ``R-7KQ-2M9-XDC``."""
    _, code = new_code(8)
    return f"{RMA_PREFIX}-{group(code)}"


def parse_rma(text: str) -> str:
    """Canonical RMA number from what someone typed; raises CodeError."""
    cleaned = normalise(text)
    if cleaned.startswith(RMA_PREFIX) and len(cleaned) == 10:
        cleaned = cleaned[1:]
    return f"{RMA_PREFIX}-{group(parse(cleaned))}"
