"""The evaluation images can be kept in a file and read back unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from portal.vision.train import evaluate as ev


def test_evaluation_sets_are_cached_and_read_back_identical(tmp_path):
    cache = tmp_path / "sets.npz"
    first = ev.synthetic_sets(6, workers=1, size=64, cache=cache)
    assert cache.is_file()
    again = ev.synthetic_sets(6, workers=1, size=64, cache=cache)
    fresh = ev.synthetic_sets(6, workers=1, size=64)
    for name in ("in_distribution", "heldout"):
        for got in (again[name], fresh[name]):
            assert np.array_equal(got[0], first[name][0]) and np.array_equal(got[1], first[name][1])
            assert got[2] == first[name][2] and got[3] == first[name][3]
    # Another size or count is generated again, not read from the file.
    other = ev.synthetic_sets(4, workers=1, size=64, cache=cache)
    assert len(other["heldout"][1]) == 4


def test_an_int8_copy_is_kept_only_within_the_allowed_roc_auc_loss(tmp_path):
    import shutil
    from argparse import Namespace

    pytest.importorskip("onnx", reason="quantisation needs the train extra")
    from portal import resource_dir
    from portal.vision.classifier import WearModel
    from portal.vision.train import quantise

    for ext in ("onnx", "json"):
        shutil.copy(resource_dir("models") / f"wear-v1.{ext}", tmp_path / f"wear-v1.{ext}")
    source = tmp_path / "wear-v1"
    cache = tmp_path / "sets.npz"

    def run(max_loss: float, replace: bool = False) -> int:
        args = Namespace(
            model=str(source),
            out=None,
            calibration_size=8,
            n=24,
            max_loss=max_loss,
            replace=replace,
            workers=1,
            cache=cache,
        )
        return quantise.main(args)

    assert run(max_loss=-1.0) == 1  # no model can gain a whole point of ROC AUC: refused and deleted
    assert not (tmp_path / "wear-v1-int8.onnx").exists() and not (tmp_path / "wear-v1-int8.json").exists()
    assert run(max_loss=1.0) == 0
    int8 = WearModel.load(tmp_path / "wear-v1-int8")
    info = int8.contract.raw["quantisation"]
    assert int8.contract.name == "wear-v1-int8" and set(info["roc_auc_loss"]) == {"in_distribution", "heldout"}
    assert int8.onnx_path.stat().st_size < WearModel.load(source).onnx_path.stat().st_size / 2
    assert run(max_loss=1.0, replace=True) == 0  # in place of the float model, under its name
    replaced = WearModel.load(source)
    assert replaced.contract.name == "wear-v1" and "quantisation" in replaced.contract.raw
    assert not (tmp_path / "wear-v1-int8.onnx").exists()


def test_mark_visibility_is_the_peak_local_change_of_luminance():
    plain = np.full((3, 16, 16, 3), 100, np.uint8)
    marked = plain.copy()
    marked[1, 4:8, 4:8] = 130  # a 4x4 mark, 30 levels lighter
    marked[2, 10, 10] = 190  # one pixel, as a JPEG difference would be: a ninth of it counts
    seen = ev.mark_visibility(marked, plain)
    np.testing.assert_allclose(seen, [0.0, 30.0, 10.0], atol=1e-3)


def test_the_auc_is_broken_down_by_how_plainly_the_marks_show():
    from portal.vision.train.synth import Spec

    worn = [Spec("knit", ("stains",), ())] * 10
    clean = [Spec("knit", (), ())] * 5 + [Spec("knit", (), ("print",))] * 5
    labels = np.array([1] * 10 + [0] * 10)
    visibility = np.array([1, 2, 3, 4, 5, 60, 70, 80, 90, 100] + [0] * 10, float)
    # Faint marks score like clean photos; plain ones above everything; prints are false alarms.
    scores = np.array([0.1, 0.2, 0.1, 0.2, 0.1, 0.9, 0.95, 0.9, 0.95, 0.9] + [0.1] * 5 + [0.8] * 5)
    out = ev.by_visibility(labels, scores, visibility, 0.5, worn + clean, parts=2)
    faint, plain = out["groups"]
    assert (faint["from"], faint["to"], faint["n"]) == (1.0, 5.0, 5)
    assert (plain["from"], plain["to"], plain["n"]) == (60.0, 100.0, 5)
    assert faint["recall"] == 0.0 and plain["recall"] == 1.0
    assert faint["roc_auc"] < 0.5 < plain["roc_auc"] == 1.0
    # Against clean photos without prints, logos, seams or grain every plain mark ranks above them.
    expected = ev.roc_auc([1] * 10 + [0] * 5, list(scores[:10]) + [0.1] * 5)
    assert expected > ev.roc_auc(labels, scores)
    assert out["roc_auc_without_hard_negatives"] == pytest.approx(expected, abs=1e-4)
