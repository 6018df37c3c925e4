import numpy as np
import pytest
import scipy.sparse as sp

from skinmap.analysis.topology.resistance import (
    corrected_resistance,
    spectral_corrected_resistance,
)


def _path(n):
    return sp.diags([np.ones(n - 1), np.ones(n - 1)], [1, -1]).tocsr()


def _cycle(n):
    a = np.zeros((n, n))
    for i in range(n):
        a[i, (i + 1) % n] = a[(i + 1) % n, i] = 1
    return sp.csr_matrix(a)


def _dense_reference(a, between_factor=2.0):
    """Independent dense computation: Moore-Penrose pinv per component (numpy SVD)."""
    from scipy.sparse.csgraph import connected_components

    n = a.shape[0]
    _, lab = connected_components(a, directed=False)
    out = np.zeros((n, n))
    mx = 0.0
    for c in np.unique(lab):
        idx = np.flatnonzero(lab == c)
        if idx.size == 1:
            continue
        b = a[np.ix_(idx, idx)]
        deg = b.sum(1)
        p = np.linalg.pinv(np.diag(deg) - b)
        r = np.diag(p)[:, None] + np.diag(p)[None, :] - 2 * p
        r = r - 1 / deg[:, None] - 1 / deg[None, :] + 2 * b / np.outer(deg, deg)
        np.fill_diagonal(r, 0)
        out[np.ix_(idx, idx)] = r
        mx = max(mx, r.max())
    out[lab[:, None] != lab[None, :]] = between_factor * mx
    return out


@pytest.mark.parametrize("n", [2, 5, 17])
def test_path_resistance_is_hop_distance(n):
    i, j = np.indices((n, n))
    np.testing.assert_allclose(corrected_resistance(_path(n), corrected=False), np.abs(i - j), atol=1e-10)


@pytest.mark.parametrize("n", [3, 8, 21])
def test_cycle_resistance_closed_form(n):
    i, j = np.indices((n, n))
    ell = np.abs(i - j)
    np.testing.assert_allclose(corrected_resistance(_cycle(n), corrected=False), ell * (n - ell) / n, atol=1e-10)


@pytest.mark.parametrize("n", [3, 10])
def test_complete_graph_closed_forms(n):
    a = sp.csr_matrix(np.ones((n, n)) - np.eye(n))
    off = ~np.eye(n, dtype=bool)
    r = corrected_resistance(a, corrected=False)
    np.testing.assert_allclose(r[off], 2.0 / n)
    # eq. 11 by hand: 2/n - 2/(n-1) + 2/(n-1)^2
    rc = corrected_resistance(a)
    np.testing.assert_allclose(rc[off], 2.0 / n - 2.0 / (n - 1) + 2.0 / (n - 1) ** 2)
    assert (np.diag(rc) == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_graphs_match_dense_pinv(seed):
    rng = np.random.default_rng(seed)
    n = 40
    a = np.triu((rng.random((n, n)) < 0.08).astype(float), 1)
    a = a + a.T
    ref = _dense_reference(a)
    got = corrected_resistance(sp.csr_matrix(a))
    np.testing.assert_allclose(got, ref, atol=1e-9)
    assert (got >= 0).all()


def test_between_components_is_documented_finite_value():
    a = sp.block_diag([_cycle(6), _path(4)]).tocsr()
    r = corrected_resistance(a, between_factor=3.0)
    within = max(r[:6, :6].max(), r[6:, 6:].max())
    assert np.isfinite(r).all()
    np.testing.assert_allclose(r[:6, 6:], 3.0 * within)
    assert r[:6, 6:].min() > within


def test_spectral_full_spectrum_equals_exact(rng):
    n = 50
    a = np.triu((rng.random((n, n)) < 0.2).astype(float), 1)
    a = sp.csr_matrix(a + a.T)
    ref = _dense_reference(a.toarray())
    got = spectral_corrected_resistance(a, n - 2, dense_below=0)
    np.testing.assert_allclose(got, ref, atol=1e-6 * ref.max())


def test_spectral_error_shrinks_with_eigenvectors_and_rows_subset(rng):
    x = rng.normal(size=(300, 5))
    from skinmap.analysis.topology.graph import symmetric_knn_graph

    a = symmetric_knn_graph(x, 8)
    ref = corrected_resistance(a)
    errs = [np.abs(spectral_corrected_resistance(a, m, dense_below=0) - ref).max() / ref.max() for m in (10, 60, 200)]
    assert errs[0] > errs[2] and errs[2] < 0.05
    rows = np.array([3, 50, 7, 299])
    sub = spectral_corrected_resistance(a, 200, rows=rows, dense_below=0)
    np.testing.assert_allclose(sub, spectral_corrected_resistance(a, 200, dense_below=0)[np.ix_(rows, rows)], atol=1e-9)


def test_bad_adjacency_is_rejected():
    with pytest.raises(ValueError, match="symmetric"):
        corrected_resistance(sp.csr_matrix(np.array([[0, 1.0], [0, 0]])))
    with pytest.raises(ValueError, match="self-loops"):
        corrected_resistance(sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0]])))


def test_spectral_handles_components_like_exact():
    a = sp.block_diag([_cycle(30), _path(12), _cycle(5)]).tocsr()
    ref = _dense_reference(a.toarray())
    # small components go the exact way; the 30-cycle uses all its eigenvectors
    got = spectral_corrected_resistance(a, 28, dense_below=12)
    np.testing.assert_allclose(got, ref, atol=1e-6 * ref.max())
