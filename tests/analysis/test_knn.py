"""Exact cosine k-NN against brute force, and bad input that names itself."""

from __future__ import annotations

import numpy as np
import pytest

from skinmap.analysis.knn import knn_search, l2_normalize


def test_matches_brute_force_and_excludes_self_by_identity(rng):
    x = rng.normal(size=(40, 6)).astype(np.float32)
    x[7] = x[3]  # an exact duplicate stays a neighbour at similarity 1
    res = knn_search(x, x, 3, exclude_self=True)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    want = np.sort(sims, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(res.similarities, want, atol=1e-5)
    assert (res.indices != np.arange(40)[:, None]).all()
    assert res.indices[3, 0] == 7 and res.similarities[3, 0] == pytest.approx(1.0, abs=1e-6)


def test_mismatched_dimensions_are_a_clear_error(rng):
    with pytest.raises(ValueError, match="queries have dimension 4 but base has 5"):
        knn_search(rng.normal(size=(3, 4)), rng.normal(size=(10, 5)), 2)
    with pytest.raises(ValueError, match="2-D"):
        knn_search(rng.normal(size=4), rng.normal(size=(10, 4)), 2)
    with pytest.raises(ValueError, match="zero norm"):
        l2_normalize(np.zeros((2, 3)))
