"""Translation workflow, one command per step (run from anywhere).

    python scripts/i18n.py extract   # source -> portal/translations/messages.pot
    python scripts/i18n.py update    # .pot -> every locale's messages.po (obsolete entries dropped)
    python scripts/i18n.py compile   # .po -> .mo
    python scripts/i18n.py check     # fresh extraction fully translated, placeholders intact, .mo current

New locale: ``pybabel init -i portal/translations/messages.pot -d portal/translations -l <locale>``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "portal" / "translations"
POT = TRANSLATIONS / "messages.pot"
KEYWORDS = ["_", "gettext", "ngettext:1,2", "lazy_gettext", "_l", "N_"]


def pybabel(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], cwd=ROOT, check=True)


def extract(output: Path = POT) -> None:
    keywords = [arg for k in KEYWORDS for arg in ("-k", k)]
    pybabel("extract", "-F", "babel.cfg", *keywords, "-c", "TRANSLATORS:", "--add-location=file", "--sort-by-file",
            "--project=returns-portal", "--version=0.1.0", "-o", str(output), ".")


def update() -> None:
    pybabel("update", "-i", str(POT), "-d", str(TRANSLATIONS), "--ignore-obsolete", "--ignore-pot-creation-date")


def compile_() -> None:
    pybabel("compile", "-d", str(TRANSLATIONS), "--statistics")


def check() -> int:
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        extract(Path(tmp) / "messages.pot")
        with open(Path(tmp) / "messages.pot", "rb") as f:
            wanted = [m.id for m in read_po(f) if m.id]
    for po_path in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        with open(po_path, "rb") as f:
            catalog = read_po(f)
        locale = po_path.parent.parent.name
        for msgid in wanted:
            message = catalog.get(msgid)
            strings = message.string if message and isinstance(message.string, tuple) else (message and message.string,)
            if message is None or message.fuzzy or not all(strings):
                problems.append(f"{locale}: untranslated or fuzzy: {msgid!r}")
        problems += [f"{locale}: {m.id!r}: {'; '.join(errs)}" for m, errs in catalog.check()]
        mo_path = po_path.with_suffix(".mo")
        compiled = {}
        if mo_path.exists():
            with open(mo_path, "rb") as f:
                compiled = {m.id: m.string for m in read_mo(f) if m.id}
        if compiled != {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy}:
            problems.append(f"{locale}: messages.mo is out of date; run `compile`")
    print("\n".join(problems) or "translations OK")
    return 1 if problems else 0


if __name__ == "__main__":
    commands = {"extract": extract, "update": update, "compile": compile_, "check": check}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(commands)}}}")
    sys.exit(commands[sys.argv[1]]() or 0)
