"""The synthetic wear-photo generator: deterministic, balanced, and it keeps held-out data out."""

from __future__ import annotations

import numpy as np
import pytest

from portal.vision.train import synth


def test_same_seed_same_images_and_other_seed_other_images():
    a = synth.generate(6, seed=11)
    b = synth.generate(6, seed=11)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = synth.generate(6, seed=12)
    assert not np.array_equal(a[0], c[0])


def test_a_sample_does_not_depend_on_the_set_size_or_worker_count():
    small = synth.generate(3, seed=5)
    large = synth.generate(64, seed=5, size=64, mask_size=8, workers=2)
    single = synth.generate(64, seed=5, size=64, mask_size=8, workers=1)
    for x, y in zip(large, single, strict=True):
        np.testing.assert_array_equal(x, y)
    again = synth.generate(5, seed=5)
    for x, y in zip(small, again, strict=False):
        np.testing.assert_array_equal(x, y[:3])


def test_shapes_types_and_ranges():
    images, labels, masks = synth.generate(8, seed=1, size=128, mask_size=16)
    assert images.shape == (8, 128, 128, 3) and images.dtype == np.uint8
    assert labels.shape == (8,) and set(labels.tolist()) <= {0, 1}
    assert masks.shape == (8, 16, 16) and masks.dtype == np.float32
    assert masks.min() >= 0.0 and masks.max() <= 1.0


def test_labels_are_balanced():
    labels = [synth.sample_spec(21, i).label for i in range(1000)]
    assert 0.45 <= float(np.mean(labels)) <= 0.55


def test_hard_negatives_are_as_common_on_clean_as_on_worn_images():
    specs = [synth.sample_spec(22, i) for i in range(2000)]
    worn = np.mean([bool(s.negatives) for s in specs if s.label])
    clean = np.mean([bool(s.negatives) for s in specs if not s.label])
    assert abs(worn - clean) < 0.06


def test_masks_are_empty_for_clean_images_and_not_for_worn_ones():
    images, labels, masks, specs = synth.generate(40, seed=3, with_specs=True)
    assert 0 < labels.sum() < len(labels)
    for label, mask, spec in zip(labels, masks, specs, strict=True):
        assert label == spec.label
        if label:
            assert mask.sum() > 0, spec
        else:
            assert mask.sum() == 0, spec


def test_training_sets_leave_out_held_out_textures_and_marks():
    specs = [synth.sample_spec(31, i, synth.TRAIN_TEXTURES, synth.TRAIN_MARKS) for i in range(3000)]
    assert not any(s.texture in synth.HELDOUT_TEXTURES for s in specs)
    assert not any(set(s.marks) & set(synth.HELDOUT_MARKS) for s in specs)
    assert {s.texture for s in specs} == set(synth.TRAIN_TEXTURES)
    assert set().union(*(s.marks for s in specs)) == set(synth.TRAIN_MARKS)
    *_, rendered = synth.generate(30, seed=31, textures=synth.TRAIN_TEXTURES, marks=synth.TRAIN_MARKS, with_specs=True)
    assert rendered == specs[:30]


def test_held_out_set_is_made_only_of_held_out_combinations():
    specs = [synth.sample_heldout_spec(41, i) for i in range(3000)]
    for s in specs:
        if s.label:
            assert s.texture in synth.HELDOUT_TEXTURES or set(s.marks) <= set(synth.HELDOUT_MARKS), s
        else:
            assert s.texture in synth.HELDOUT_TEXTURES, s
    assert any(s.texture not in synth.HELDOUT_TEXTURES for s in specs)  # held-out marks on seen textures
    assert any(set(s.marks) & set(synth.HELDOUT_MARKS) for s in specs)
    assert 0.45 <= np.mean([s.label for s in specs]) <= 0.55
    images, labels, masks, rendered = synth.generate_heldout(12, seed=41, with_specs=True)
    assert rendered == specs[:12] and images.shape[0] == 12


def test_choosing_textures_and_marks():
    *_, specs = synth.generate(20, seed=2, textures=["leather"], marks=["stains"], with_specs=True)
    assert {s.texture for s in specs} == {"leather"}
    assert all(s.marks in ((), ("stains",)) for s in specs)
    *_, specs = synth.generate(10, seed=2, marks=[], with_specs=True)
    assert not any(s.marks for s in specs)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown textures"):
        synth.generate(1, seed=0, textures=["velvet"])
    with pytest.raises(ValueError, match="unknown marks"):
        synth.generate(1, seed=0, marks=["rips"])


def test_every_texture_mark_and_negative_renders():
    for i, texture in enumerate(synth.TEXTURES):
        for j, mark in enumerate(synth.MARKS):
            neg = synth.NEGATIVES[(i + j) % len(synth.NEGATIVES)]
            image, mask = synth.render(synth.Spec(texture, (mark,), (neg,)), seed=9, index=i * 10 + j)
            assert image.shape == (128, 128, 3) and mask.sum() > 0, (texture, mark)
            assert image.std() > 1.0  # not a blank frame


def test_training_only_damage_is_worn_never_held_out_and_renders_everywhere():
    marks = synth.TRAIN_MARKS + synth.AUX_MARKS
    assert not set(synth.AUX_MARKS) & set(synth.MARKS)  # never evaluated as a mark type of their own
    *_, specs = synth.generate(
        40, seed=7, textures=synth.TRAIN_TEXTURES, marks=marks, size=64, mask_size=8, with_specs=True
    )
    assert not any(set(s.marks) & set(synth.HELDOUT_MARKS) or s.texture in synth.HELDOUT_TEXTURES for s in specs)
    for i, texture in enumerate(synth.TRAIN_TEXTURES):
        for j, mark in enumerate(synth.AUX_MARKS):
            image, mask = synth.render(synth.Spec(texture, (mark,), ()), seed=19, index=i * 10 + j)
            clean, _ = synth.render(synth.Spec(texture, (), ()), seed=19, index=i * 10 + j)
            assert mask.sum() > 0, (texture, mark)
            # The damage changes the picture where its mask says (not a blank frame, not a no-op).
            assert np.abs(image.astype(int) - clean.astype(int)).mean() > 0.5, (texture, mark)


def test_hard_negative_mix_can_be_changed_for_training_only():
    default = [synth.sample_spec(23, i) for i in range(2000)]
    same = [
        synth.sample_spec(23, i, negative_rate=synth.HARD_NEGATIVE_RATE, negative_weights=None) for i in range(2000)
    ]
    assert default == same  # the evaluation sets keep their images
    heavy = [synth.sample_spec(23, i, negative_rate=0.9, negative_weights=[3, 3, 1, 1]) for i in range(2000)]

    def share(specs, kind):
        return sum(kind in s.negatives for s in specs) / len(specs)

    assert sum(bool(s.negatives) for s in heavy) > sum(bool(s.negatives) for s in default) + 300
    assert share(heavy, "print") > 1.5 * share(default, "print") and share(heavy, "logo") > 1.5 * share(default, "logo")
    with pytest.raises(ValueError, match="negative_weights"):
        synth.generate(1, seed=0, negative_weights=[1, 1])
    with pytest.raises(ValueError, match="negative_weights"):
        synth.generate(1, seed=0, negative_weights=[0, 0, 0, 0])


def test_a_photo_can_be_drawn_again_without_its_marks_and_nothing_else_changes():
    images, labels, masks, specs = synth.generate(24, seed=21, size=64, mask_size=8, with_specs=True)
    bare, bare_labels, bare_masks = synth.render_all(specs, 21, size=64, mask_size=8, marks_drawn=False)
    np.testing.assert_array_equal(bare_labels, labels)
    np.testing.assert_array_equal(bare_masks, masks)  # the marks' places are still known
    for image, twin, mask, label in zip(images, bare, masks, labels, strict=True):
        if not label:
            np.testing.assert_array_equal(twin, image)  # nothing to leave out: the very same photo
            continue
        diff = np.abs(image.astype(int) - twin.astype(int)).max(axis=2)
        marked = np.kron(mask > 0, np.ones((8, 8), bool))  # the coarse mask at pixel scale
        assert diff[marked].max() > 5  # the marks are gone (some are faint: that is what this measures)
        if (~marked).any():  # away from the marks the same surface, light and viewpoint (JPEG aside)
            assert np.median(diff[~marked]) <= 3 < diff[marked].max()
