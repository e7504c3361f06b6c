"""The shipped wear classifier, its JSON contract, and how the portal runs it."""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from portal import resource_dir
from portal.vision import classifier
from portal.vision.classifier import ModelError, WearModel, WearScore, get_model, render_overlay
from portal.vision.train import synth

MODELS = resource_dir("models")
NAME = "wear-v1"
# Every model the portal ships; PORTAL_WEAR_MODEL picks one.
SHIPPED = ("wear-v1", "wear-v1-int8", "wear-v2", "wear-v2-int8")


@pytest.fixture(scope="module")
def model() -> WearModel:
    return WearModel.load(MODELS / NAME)


@pytest.fixture(autouse=True)
def fresh_cache():
    classifier.clear_cache()
    yield
    classifier.clear_cache()


@pytest.fixture
def model_copy(tmp_path):
    """A copy of the shipped model to break: (directory, json path, onnx path, contract dict)."""
    for ext in (".json", ".onnx"):
        shutil.copy(MODELS / f"{NAME}{ext}", tmp_path / f"{NAME}{ext}")
    json_path = tmp_path / f"{NAME}.json"
    return tmp_path, json_path, tmp_path / f"{NAME}.onnx", json.loads(json_path.read_text())


def _pil(images: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(a) for a in images]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_with_its_contract(name):
    model = WearModel.load(MODELS / name)
    c = model.contract
    assert c.name == name and c.labels == ("no_wear", "wear")
    assert c.channel_order == "RGB" and c.layout == "NCHW" and c.channels == 3
    assert 0.0 < c.threshold < 1.0
    assert model.version.startswith(f"{name}@{c.version}+")
    assert "synthetic" in c.raw["training_data"]
    assert (MODELS / f"{name}.onnx").stat().st_size < 5 * 1024 * 1024
    for key in ("in_distribution", "heldout"):
        assert c.raw["metrics"][key]["roc_auc"] is not None
        assert c.raw["metrics"][key]["calibration"]["expected_calibration_error"] is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_worn_photos_score_higher_than_clean_ones(name):
    model = WearModel.load(MODELS / name)
    images, labels, _ = synth.generate(160, seed=9090, textures=synth.TRAIN_TEXTURES, marks=synth.TRAIN_MARKS)
    scores = np.array([s.probability for s in model.score(_pil(images))])
    worn, clean = scores[labels == 1], scores[labels == 0]
    assert len(worn) > 50 and len(clean) > 50
    assert worn.mean() > clean.mean() + 0.25
    flagged = scores >= model.threshold
    assert (flagged == labels.astype(bool)).mean() > 0.7


def test_a_batch_of_five_gives_five_scores(model):
    images, _, _ = synth.generate(5, seed=77)
    scores = model.score(_pil(images))
    assert len(scores) == 5
    for s in scores:
        assert isinstance(s, WearScore)
        assert 0.0 <= s.probability <= 1.0
        assert s.label == ("wear" if s.probability >= model.threshold else "no_wear")
        assert s.model_version == model.version
    assert model.score([]) == []


def test_batch_scores_match_single_scores(model):
    images, _, _ = synth.generate(3, seed=78)
    batch = model.score(_pil(images))
    single = [model.score([im])[0] for im in _pil(images)]
    for a, b in zip(batch, single, strict=True):
        assert a.probability == pytest.approx(b.probability, abs=1e-5)


def test_score_map_shape_matches_the_contract(model):
    images, _, _ = synth.generate(2, seed=79)
    size = model.contract.map_size
    assert size == model.contract.raw["outputs"]["score_map"]["shape"][-1]
    for s in model.score(_pil(images)):
        assert len(s.score_map) == size and all(len(row) == size for row in s.score_map)
        assert all(0.0 <= v <= 1.0 for row in s.score_map for v in row)


def test_score_map_points_at_the_mark(model):
    images, labels, masks = synth.generate(60, seed=4242, textures=synth.TRAIN_TEXTURES, marks=synth.TRAIN_MARKS)
    hits = []
    for s, label, mask in zip(model.score(_pil(images)), labels, masks, strict=True):
        if label and s.probability >= model.threshold:
            hits.append(mask.flat[int(np.argmax(np.array(s.score_map)))] > 0)  # hottest cell lies on a mark
    assert len(hits) >= 15 and np.mean(hits) > 0.8


def test_any_photo_shape_and_mode_is_prepared_to_the_contract(model):
    photos = [
        Image.new("RGB", (640, 480), (200, 10, 10)),
        Image.new("L", (300, 900), 128),
        Image.new("RGBA", (50, 50), (0, 0, 255, 128)),
    ]
    batch = model.preprocess(photos)
    size = model.contract.input_size
    assert batch.shape == (3, 3, size, size) and batch.dtype == np.float32
    mean, std = np.array(model.contract.mean), np.array(model.contract.std)
    expected_red = (200 / 255 - mean[0]) / std[0]
    assert batch[0, 0].mean() == pytest.approx(expected_red, abs=1e-4)
    assert len(model.score(photos)) == 3


def _broken(model_copy, change) -> None:
    directory, json_path, onnx_path, data = model_copy
    change(data)
    json_path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(sha256="0" * 64), "sha256"),
        (lambda d: d["input"].update(size=160), "shape"),
        (lambda d: d["input"].update(name="pixels"), "input is named"),
        (lambda d: d["outputs"]["probability"].update(name="wear_prob"), "no output named 'wear_prob'"),
        (lambda d: d["outputs"]["score_map"].update(name="heat"), "no output named 'heat'"),
        (lambda d: d["outputs"]["score_map"].update(size=8), "shape"),
        (lambda d: d["input"].update(channel_order="BGR"), "RGB"),
        (lambda d: d.pop("threshold"), "threshold"),
    ],
)
def test_a_contract_that_does_not_match_the_model_is_refused(model_copy, change, message):
    _broken(model_copy, change)
    with pytest.raises(ModelError, match=message):
        WearModel.load(model_copy[0] / NAME)


def test_a_truncated_model_file_is_refused(model_copy):
    directory, json_path, onnx_path, data = model_copy
    blob = onnx_path.read_bytes()
    onnx_path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelError, match="sha256"):
        WearModel.load(directory / NAME)
    # Even with a contract that vouches for the truncated file, onnxruntime cannot load it.
    data["sha256"] = classifier.file_sha256(onnx_path)
    json_path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="cannot be loaded"):
        WearModel.load(directory / NAME)


def test_missing_or_unreadable_files_are_refused(model_copy, tmp_path):
    directory, json_path, onnx_path, _ = model_copy
    with pytest.raises(ModelError, match="not found"):
        WearModel.load(tmp_path / "nothing-here")
    json_path.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        WearModel.load(directory / NAME)
    shutil.copy(MODELS / f"{NAME}.json", json_path)
    onnx_path.unlink()
    with pytest.raises(ModelError, match="not found"):
        WearModel.load(directory / NAME)


def test_load_accepts_the_json_or_onnx_path(model):
    for suffix in (".json", ".onnx"):
        assert WearModel.load(MODELS / f"{NAME}{suffix}").version == model.version


def test_get_model_returns_none_and_logs_once_for_a_broken_model(model_copy, caplog):
    directory, json_path, onnx_path, _ = model_copy
    onnx_path.write_bytes(onnx_path.read_bytes()[:1000])
    with caplog.at_level(logging.ERROR, logger="portal.vision"):
        assert get_model(directory, NAME) is None
        assert get_model(directory, NAME) is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unscored" in errors[0].getMessage() and NAME in errors[0].getMessage()


def test_get_model_returns_none_for_a_missing_model_or_a_bad_name(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="portal.vision"):
        assert get_model(tmp_path, NAME) is None
        assert get_model(MODELS, "../models/wear-v1") is None
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2


def test_get_model_caches_the_good_model_and_reloads_when_files_change(model_copy):
    directory, json_path, onnx_path, data = model_copy
    first = get_model(directory, NAME)
    assert first is not None and get_model(directory, NAME) is first
    data["version"] = "9.9.9"
    json_path.write_text(json.dumps(data))
    os.utime(json_path, ns=(json_path.stat().st_atime_ns, json_path.stat().st_mtime_ns + 10**9))
    second = get_model(directory, NAME)
    assert second is not None and second is not first and "9.9.9" in second.version


def test_one_session_per_process_created_lazily_and_again_after_fork(monkeypatch):
    m = WearModel.load(MODELS / NAME)
    assert m._session is None  # nothing built until first use
    first = m.session()
    assert m.session() is first
    opts = first.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert first.get_providers() == ["CPUExecutionProvider"]
    parent = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)  # as seen from a forked child
    second = m.session()
    assert second is not first and m.session() is second
    images, _, _ = synth.generate(2, seed=5)
    assert len(m.score(_pil(images))) == 2


def test_overlay_keeps_the_photo_size_and_marks_high_scores():
    photo = Image.new("RGB", (400, 300), (0, 0, 200))
    grid = [[0.0] * 16 for _ in range(16)]
    for r in range(6, 10):
        for c in range(6, 10):
            grid[r][c] = 1.0
    out = render_overlay(photo, grid)
    assert out.size == photo.size and out.mode == "RGB"
    centre = out.getpixel((200, 150))
    assert centre[0] > 120 and centre[2] < 150  # reddish where the score is high
    assert out.getpixel((100, 150)) == (0, 0, 200)  # low score, inside the square: untouched
    assert out.getpixel((10, 150))[2] < 200  # outside what the model saw: dimmed
    with pytest.raises(ValueError):
        render_overlay(photo, [])


def test_overlay_accepts_a_stored_score_map(model):
    images, _, _ = synth.generate(1, seed=6)
    s = model.score(_pil(images))[0]
    rounded = [[round(v, 4) for v in row] for row in s.score_map]  # as the portal stores it
    out = render_overlay(Image.fromarray(images[0]).resize((256, 256)), rounded)
    assert out.size == (256, 256)
