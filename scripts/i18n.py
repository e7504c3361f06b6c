"""Translation workflow, one command per step (run from anywhere).

    python scripts/i18n.py extract   # source -> portal/translations/messages.pot
    python scripts/i18n.py update    # .pot -> every locale's messages.po (obsolete entries dropped)
    python scripts/i18n.py compile   # .po -> .mo
    python scripts/i18n.py check     # a fresh extraction is fully translated, placeholders match, .mo is current

New locale: ``pybabel init -i portal/translations/messages.pot -d portal/translations -l <locale>``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "portal" / "translations"
POT = TRANSLATIONS / "messages.pot"
KEYWORDS = ["_", "gettext", "ngettext:1,2", "lazy_gettext", "_l", "N_"]
COMMENT_TAG = "TRANSLATORS:"


def pybabel(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], cwd=ROOT, check=True)


def extract() -> None:
    keywords = [arg for k in KEYWORDS for arg in ("-k", k)]
    pybabel(
        "extract",
        "-F",
        "babel.cfg",
        *keywords,
        "-c",
        COMMENT_TAG,
        "--add-location=file",
        "--sort-by-file",
        "--project=returns-portal",
        "--version=0.1.0",
        "-o",
        str(POT),
        ".",
    )


def update() -> None:
    pybabel("update", "-i", str(POT), "-d", str(TRANSLATIONS), "--ignore-obsolete", "--ignore-pot-creation-date")


def compile_() -> None:
    pybabel("compile", "-d", str(TRANSLATIONS), "--statistics")


def extracted() -> dict[str | tuple[str, ...], list[str]]:
    """Message ids in the source right now (plural ones as tuples), with where they occur."""
    with open(ROOT / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {**DEFAULT_KEYWORDS, **parse_keywords(KEYWORDS)}
    found: dict[str | tuple[str, ...], list[str]] = {}
    for path, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords, [COMMENT_TAG]
    ):
        msgid = tuple(message) if isinstance(message, (list, tuple)) else message
        found.setdefault(msgid, []).append(f"{path}:{lineno}")
    return found


def _strings(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def compiled_differences(po_path: Path) -> set:
    """Message ids whose translation differs between the .po and its compiled .mo."""
    with open(po_path, "rb") as f:
        source = {
            _strings(m.id): _strings(m.string) for m in read_po(f) if m.id and any(_strings(m.string)) and not m.fuzzy
        }
    mo_path = po_path.with_suffix(".mo")
    compiled = {}
    if mo_path.exists():
        with open(mo_path, "rb") as f:
            compiled = {_strings(m.id): _strings(m.string) for m in read_mo(f) if m.id}
    return {k for k in source.keys() | compiled.keys() if source.get(k) != compiled.get(k)}


def check() -> int:
    wanted = extracted()
    problems = []
    for po_path in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        locale = po_path.parent.parent.name
        with open(po_path, "rb") as f:
            catalog = read_po(f)
        for msgid, where in wanted.items():
            message = catalog.get(msgid)
            if message is None or message.fuzzy or not all(_strings(message.string)):
                problems.append(f"{locale}: not translated: {msgid!r} ({where[0]})")
        problems += [f"{locale}: {m.id!r}: {'; '.join(map(str, errs))}" for m, errs in catalog.check()]
        if compiled_differences(po_path):
            problems.append(f"{locale}: messages.mo is out of date; run `compile`")
    print("\n".join(problems) or "translations OK")
    return 1 if problems else 0


if __name__ == "__main__":
    commands = {"extract": extract, "update": update, "compile": compile_, "check": check}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {Path(sys.argv[0]).name} {{{'|'.join(commands)}}}")
    sys.exit(commands[sys.argv[1]]() or 0)
