"""The evaluation images can be kept in a file and read back unchanged."""

from __future__ import annotations

import numpy as np

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
