"""Per-category decision thresholds of the wear classifier, and the calibration figures of its evaluation."""

from __future__ import annotations

import pytest

from portal.domain.wear import agreement_at, best_threshold, label_for, parse_thresholds, threshold_for
from portal.vision.train.evaluate import calibration


def test_thresholds_are_read_from_the_setting():
    assert parse_thresholds(None) == {} and parse_thresholds("  ") == {}
    assert parse_thresholds(" Shoes = 0.45, knitwear=0.6 ;outerwear=1") == {
        "shoes": 0.45,
        "knitwear": 0.6,
        "outerwear": 1.0,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shoes", "expected category=number"),
        ("=0.4", "expected category=number"),
        ("shoes=high", "is not a number"),
        ("shoes=1.5", "outside 0..1"),
        ("shoes=-0.1", "outside 0..1"),
        ("shoes=0.4,SHOES=0.5", "given twice"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        parse_thresholds(text)


def test_the_category_threshold_decides_the_label_else_the_models():
    thresholds = {"shoes": 0.3, "knitwear": 0.8}
    assert threshold_for(" Shoes ", thresholds, 0.56) == 0.3
    assert threshold_for("tops", thresholds, 0.56) == 0.56 and threshold_for(None, thresholds, 0.56) == 0.56
    assert label_for(0.4, "shoes", thresholds, 0.56) == "wear"
    assert label_for(0.4, "tops", thresholds, 0.56) == "no_wear"
    assert label_for(0.7, "knitwear", thresholds, 0.56) == "no_wear"
    assert label_for(0.8, "knitwear", thresholds, 0.56) == "wear"  # at the threshold counts as worn
    assert label_for(0.7, "tops", None, 0.56) == "wear"


def test_agreement_and_the_best_threshold_to_choose():
    pairs = [(0.2, False), (0.35, False), (0.45, True), (0.5, True), (0.9, True), (0.6, False)]
    assert agreement_at(pairs, 0.5) == pytest.approx(4 / 6)
    assert agreement_at(pairs, 0.4) == pytest.approx(5 / 6)
    best, agreement = best_threshold(pairs, 0.56)
    assert agreement == pytest.approx(5 / 6) and 0.35 < best <= 0.45
    assert best == 0.45  # of the equally good candidates, the one nearest the model's threshold
    assert best_threshold([], 0.56) == (0.56, None) and agreement_at([], 0.5) is None


def test_calibration_table_and_expected_calibration_error():
    # Bin 0.1-0.2: 10 images at 0.15, 1 worn (observed 0.1); bin 0.8-0.9: 10 at 0.85, 9 worn (0.9).
    labels = [1] + [0] * 9 + [1] * 9 + [0]
    scores = [0.15] * 10 + [0.85] * 10
    cal = calibration(labels, scores)
    assert cal["expected_calibration_error"] == pytest.approx(0.05)
    rows = {row["from"]: row for row in cal["bins"]}
    assert len(cal["bins"]) == 10 and rows[0.1]["n"] == 10 and rows[0.8]["n"] == 10 and rows[0.5]["n"] == 0
    assert rows[0.1]["mean_probability"] == pytest.approx(0.15) and rows[0.1]["observed_wear_rate"] == pytest.approx(
        0.1
    )
    assert "mean_probability" not in rows[0.5]
    # A probability of exactly 1 falls in the last bin; an overconfident model has a large error.
    bad = calibration([0, 0, 0, 0], [1.0, 1.0, 0.95, 0.99])
    assert bad["bins"][-1]["n"] == 4 and bad["expected_calibration_error"] > 0.9
