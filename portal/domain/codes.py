"""Short human codes: Crockford base32 with a check character from the same alphabet.

Used for RMA numbers, pickup codes and store-credit codes. Crockford's alphabet has no I, L, O
or U, and decoding treats I/L as 1 and O as 0, so codes survive being read aloud or retyped.
The check character is a Damm check over GF(32) (``x * y = 2x + y``, a totally anti-symmetric
quasigroup), so it is one of the 32 code symbols and still catches every single wrong symbol and
every swap of two neighbours before any lookup.

Codes issued before used a mod-37 check that could end in ``* ~ $ = U``; lookups of stored
codes accept that check too (``accept_legacy``), so those codes keep working.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

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


def _times_two(v: int) -> int:
    """Multiply by x in GF(32) = GF(2)[x] / (x^5 + x^2 + 1)."""
    v <<= 1
    return v ^ 0b100101 if v & 0b100000 else v


def check_char(body: str) -> str:
    """The Damm check symbol of canonical ``body`` symbols: one of the 32 code symbols."""
    interim = 0
    for ch in body:
        interim = _times_two(interim) ^ _DECODE[ch]
    return ALPHABET[_times_two(interim)]


def legacy_check_char(value: int) -> str:
    """The mod-37 check character of codes issued before (may be ``* ~ $ = U``)."""
    return CHECK_ALPHABET[value % 37]


def new_code(symbols: int = 8) -> tuple[int, str]:
    """A random code of ``symbols`` base32 symbols (5 bits each) plus its check character."""
    value = secrets.randbits(5 * symbols)
    body = encode(value, symbols)
    return value, body + check_char(body)


def normalise(text: str) -> str:
    """Upper-case, drop spaces, dashes and a known prefix's separator; map I/L/O."""
    cleaned = "".join(ch for ch in text.upper() if ch not in " -_.")
    return "".join("1" if ch in "IL" else "0" if ch == "O" else ch for ch in cleaned)


def parse(text: str, symbols: int = 8, accept_legacy: bool = False) -> str:
    """Validate a typed code (without any prefix) and return its canonical form.

    ``accept_legacy`` also accepts the mod-37 check of codes issued before (for looking up
    stored codes).
    """
    cleaned = normalise(text)
    if len(cleaned) != symbols + 1:
        raise CodeError("wrong length")
    body, check = cleaned[:-1], cleaned[-1]
    value = 0
    for ch in body:
        if ch not in _DECODE:
            raise CodeError("unknown symbol")
        value = value * 32 + _DECODE[ch]
    if check != check_char(body) and not (accept_legacy and check == legacy_check_char(value)):
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


def parse_rma(text: str, accept_legacy: bool = False) -> str:
    """Canonical RMA number from what someone typed; raises CodeError."""
    cleaned = normalise(text)
    if cleaned.startswith(RMA_PREFIX) and len(cleaned) == 10:
        cleaned = cleaned[1:]
    return f"{RMA_PREFIX}-{group(parse(cleaned, accept_legacy=accept_legacy))}"


def _has_shape(cleaned: str, symbols: int) -> bool:
    """``symbols`` base32 symbols followed by something that could be a check character."""
    return len(cleaned) == symbols + 1 and all(ch in _DECODE for ch in cleaned[:-1]) and cleaned[-1] in CHECK_ALPHABET


def looks_like_rma(text: str) -> bool:
    """True when ``text`` has the shape of an RMA number (with or without its prefix).

    Only the shape is checked (length and symbols), not the check character, so
    that a scanner or search box can route the input to :func:`parse_rma`, which
    then reports a mistyped number precisely. Never true for a pickup code.
    """
    cleaned = normalise(text)
    if cleaned.startswith(RMA_PREFIX) and len(cleaned) == 10:
        cleaned = cleaned[1:]
    return _has_shape(cleaned, 8)


PICKUP_PREFIX = "P"
PICKUP_SYMBOLS = 10  # 50 random bits


def new_pickup_code() -> str:
    """A courier pickup code: 50 random bits plus a check character, e.g. ``P-7KQ2-M9XD-C3R``.

    Ten symbols and the check character are grouped 4-4-3 for reading aloud; the
    ``P`` prefix tells it apart from an RMA number (``R-...``, 8 symbols).
    """
    _, code = new_code(PICKUP_SYMBOLS)
    return f"{PICKUP_PREFIX}-{group(code, 4)}"


def parse_pickup_code(text: str, accept_legacy: bool = False) -> str:
    """Canonical pickup code (``P-XXXX-XXXX-XXC``) from what someone typed or scanned.

    Accepts lower case, spaces, dashes and I/L/O for 1/0. The ``P`` prefix is
    required: were it optional, a prefixed code missing one symbol would have the
    length of a bare code and would pass the check character one time in 37.
    Raises CodeError for a wrong length or prefix, an unknown symbol or a check
    character that does not match, so a mistyped code is rejected before any lookup.
    """
    cleaned = normalise(text)
    if len(cleaned) != PICKUP_SYMBOLS + 2:
        raise CodeError("wrong length")
    if not cleaned.startswith(PICKUP_PREFIX):
        raise CodeError("not a pickup code")
    return f"{PICKUP_PREFIX}-{group(parse(cleaned[1:], PICKUP_SYMBOLS, accept_legacy), 4)}"


STORE_CREDIT_PREFIX = "SC"
STORE_CREDIT_SYMBOLS = 10


def new_store_credit_code() -> str:
    """A store-credit code: 50 random bits plus a check character, e.g. ``SC-7KQ2-M9XD-C3R``."""
    _, code = new_code(STORE_CREDIT_SYMBOLS)
    return f"{STORE_CREDIT_PREFIX}-{group(code, 4)}"


def parse_store_credit_code(text: str, accept_legacy: bool = False) -> str:
    """Canonical store-credit code (``SC-XXXX-XXXX-XXC``) from what a shopper typed or the shop sent.

    Accepts lower case, spaces, dashes and I/L/O for 1/0; the ``SC`` prefix is required. Raises
    CodeError for a wrong length or prefix, an unknown symbol or a check character that does not match.
    """
    cleaned = normalise(text)
    if len(cleaned) != STORE_CREDIT_SYMBOLS + 1 + len(STORE_CREDIT_PREFIX):
        raise CodeError("wrong length")
    if not cleaned.startswith(STORE_CREDIT_PREFIX):
        raise CodeError("not a store credit code")
    body = parse(cleaned[len(STORE_CREDIT_PREFIX) :], STORE_CREDIT_SYMBOLS, accept_legacy)
    return f"{STORE_CREDIT_PREFIX}-{group(body, 4)}"


def compact_pickup_code(text: str) -> str:
    """The canonical pickup code without dashes (``P7KQ2M9XDC3R``), for barcodes and QR codes."""
    return parse_pickup_code(text, accept_legacy=True).replace("-", "")


def looks_like_pickup_code(text: str) -> bool:
    """True when ``text`` has the shape of a pickup code: ``P`` and 11 code symbols.

    Like :func:`looks_like_rma`, only the shape is checked; call
    :func:`parse_pickup_code` to validate. Never true for an RMA number.
    """
    cleaned = normalise(text)
    return cleaned.startswith(PICKUP_PREFIX) and _has_shape(cleaned[1:], PICKUP_SYMBOLS)


def parse_for_lookup(parser: Callable[..., str], text: str) -> tuple[str, bool]:
    """Canonical code for looking up a stored one, and whether it passed the current check.

    A code that passes only the old mod-37 check may be one issued before; the caller looks it up
    and, when nothing is found, reports it as mistyped (the current check failed), not unknown.
    Raises CodeError when neither check passes.
    """
    try:
        return parser(text), True
    except CodeError:
        return parser(text, accept_legacy=True), False
