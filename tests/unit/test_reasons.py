"""The reason catalogue: codes, responsibilities, quality flags, sub-reasons, outcomes."""

from __future__ import annotations

import pytest

from portal.domain.policy import Policy
from portal.domain.reasons import (
    OUTCOME_LABELS,
    OUTCOMES,
    REASONS,
    RESPONSIBILITIES,
    RESPONSIBILITY_LABELS,
    quality_reasons,
    responsibility_of,
)


@pytest.mark.parametrize(
    ("code", "responsibility", "quality", "subs"),
    [
        ("defective", "seller", True, {"stopped_working", "poor_stitching", "stain_on_arrival"}),
        ("damaged", "logistics", True, {"crushed_parcel", "broken_in_transit"}),
        ("wrong_item", "seller", True, {"wrong_size_sent", "wrong_colour_sent", "different_product"}),
        ("not_as_described", "seller", True, {"colour", "material", "size_chart"}),
        ("missing_parts", "logistics", False, {"missing_accessory", "incomplete_set"}),
        ("size_fit", "customer", False, {"too_small", "too_large"}),
        ("changed_mind", "customer", False, {"no_longer_needed", "found_better_price", "ordered_by_mistake"}),
        ("late_delivery", "logistics", False, set()),
    ],
)
def test_catalogue_entry(code: str, responsibility: str, quality: bool, subs: set[str]) -> None:
    reason = REASONS[code]
    assert reason.code == code
    assert reason.responsibility == responsibility
    assert reason.quality is quality
    assert {sub.code for sub in reason.sub_reasons} == subs
    assert responsibility_of(code) == responsibility


@pytest.mark.parametrize("code", sorted(REASONS))
def test_every_reason_is_well_formed(code: str) -> None:
    reason = REASONS[code]
    assert reason.code == code
    assert reason.responsibility in RESPONSIBILITIES
    assert isinstance(reason.label, str) and reason.label.strip()
    sub_codes = [sub.code for sub in reason.sub_reasons]
    assert len(sub_codes) == len(set(sub_codes))
    for sub in reason.sub_reasons:
        assert isinstance(sub.label, str) and sub.label.strip()
        assert reason.sub_reason(sub.code) is sub


def test_codes_are_unique_and_labels_distinct() -> None:
    labels = [reason.label for reason in REASONS.values()]
    assert len(labels) == len(set(labels))
    assert len(REASONS) >= 8


@pytest.mark.parametrize(
    ("code", "sub", "belongs"),
    [
        ("defective", "stopped_working", True),
        ("defective", "too_small", False),
        ("size_fit", "too_small", True),
        ("late_delivery", "anything", False),
    ],
)
def test_sub_reason_membership(code: str, sub: str, belongs: bool) -> None:
    assert (REASONS[code].sub_reason(sub) is not None) is belongs


@pytest.mark.parametrize("code", ["", "bogus", "DEFECTIVE"])
def test_responsibility_of_unknown_is_none(code: str) -> None:
    assert responsibility_of(code) is None


def test_default_photo_required_reasons_exist() -> None:
    for code in Policy(version="t").photo_required_reasons:
        assert code in REASONS


def test_quality_reasons() -> None:
    assert quality_reasons() == {"defective", "damaged", "wrong_item", "not_as_described"}


def test_outcomes_and_labels() -> None:
    assert OUTCOMES == ("refund", "store_credit", "exchange")
    assert set(OUTCOME_LABELS) == set(OUTCOMES)
    assert set(RESPONSIBILITY_LABELS) == set(RESPONSIBILITIES) == {"seller", "logistics", "customer"}
    for label in [*OUTCOME_LABELS.values(), *RESPONSIBILITY_LABELS.values()]:
        assert isinstance(label, str) and label.strip()
