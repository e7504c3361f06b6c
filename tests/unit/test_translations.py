"""The Simplified Chinese catalogue covers every shopper-visible message and is compiled.

Extraction runs fresh from the source, so a new untranslated message fails here
with its id and location. Fix with ``python scripts/i18n.py extract``, ``update``,
translate, then ``compile``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "portal" / "translations" / "zh_Hans" / "LC_MESSAGES"
PO = LOCALE_DIR / "messages.po"
MO = LOCALE_DIR / "messages.mo"
PLACEHOLDER = re.compile(r"%\([A-Za-z_]\w*\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _workflow():
    spec = importlib.util.spec_from_file_location("i18n_workflow", ROOT / "scripts" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _strings(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@pytest.fixture(scope="module")
def catalog():
    with open(PO, "rb") as f:
        return read_po(f)


@pytest.fixture(scope="module")
def extracted():
    """Message ids found in the source right now (same mapping and keywords as the workflow script)."""
    return _workflow().extracted()


def test_extraction_finds_messages_from_every_source(extracted):
    files = {where.split(":")[0] for places in extracted.values() for where in places}
    for expected in (
        "portal/domain/policy.py",
        "portal/domain/reasons.py",
        "portal/domain/lifecycle.py",
        "portal/web/shop/forms.py",
        "templates/shop/lookup.html",
        "templates/email/return_submitted.txt",
    ):
        assert expected in files
    assert (
        "Signing in is paused for %(num)d minute after several wrong passwords.",
        "Signing in is paused for %(num)d minutes after several wrong passwords.",
    ) in extracted


def test_catalogue_is_chinese_with_one_plural_form(catalog):
    assert str(catalog.locale) == "zh_Hans"
    assert catalog.plural_forms == "nplurals=1; plural=0;"


def test_every_extracted_message_is_translated(catalog, extracted):
    missing = []
    for msgid, places in sorted(extracted.items(), key=lambda item: str(item[0])):
        message = catalog.get(msgid)
        if message is None or message.fuzzy or not all(s.strip() for s in _strings(message.string)):
            missing.append(f"{msgid!r} ({places[0]})")
    assert not missing, "untranslated zh_Hans messages:\n" + "\n".join(missing)


def test_no_fuzzy_or_empty_entries(catalog):
    bad = [m.id for m in catalog if m.id and (m.fuzzy or not all(s.strip() for s in _strings(m.string)))]
    assert not bad


def test_placeholders_are_kept(catalog):
    wrong = []
    for message in catalog:
        if not message.id:
            continue
        expected = sorted(PLACEHOLDER.findall(_strings(message.id)[-1]))
        for string in _strings(message.string):
            if sorted(PLACEHOLDER.findall(string)) != expected:
                wrong.append(f"{message.id!r} -> {string!r}")
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_compiled_catalogue_matches_po(catalog):
    with open(MO, "rb") as f:
        compiled = {_strings(m.id): _strings(m.string) for m in read_mo(f) if m.id}
    source = {_strings(m.id): _strings(m.string) for m in catalog if m.id and not m.fuzzy}
    stale = sorted(str(k) for k in source.keys() | compiled.keys() if source.get(k) != compiled.get(k))
    assert not stale, "messages.mo is out of date; recompile. Differences:\n" + "\n".join(stale)


def test_start_page_in_chinese(client):
    html = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in html
    assert "申请退货" in html
    assert "订单号" in html
    assert "Start a return" not in html


def test_start_page_in_english(client):
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Start a return" in html
    assert "申请退货" not in html


def test_every_translation_survives_formatting(catalog):
    """Templates format every message (``_()`` with or without values), so a bare ``%`` in a
    translation ("达成率（%）") breaks the page: each must be a placeholder or written ``%%``."""
    broken = []
    for message in catalog:
        for text in _strings(message.string):
            if not text:
                continue
            try:
                text % {name: 1 for name in re.findall(r"%\((\w+)\)", text)}
            except (ValueError, TypeError, KeyError):
                broken.append((message.id, text))
    assert not broken, broken


def test_the_return_steps_are_named_in_a_shoppers_words(catalog):
    """The guided return's five step names, as a shopper in China reads them above the form (a
    technical word such as 参数, "parameters", once stood for "Details")."""
    from portal.web.shop.guided import STEP_LABELS

    names = {step: catalog[str(label)].string for step, label in STEP_LABELS.items()}
    assert names == {"items": "商品", "reasons": "退货原因", "details": "详情", "outcome": "您的选择", "review": "确认"}
