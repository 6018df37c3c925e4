"""PCA whitening separates planted copies from look-alikes that share a dominant common component."""

from __future__ import annotations

import numpy as np
import pytest

from skinmap.analysis.quality import duplicates, whitening


def _lookalikes_with_copies(rng, n=400, d=64, n_copies=20):
    """Every "image" = a strong shared component + a weak individual part spread over d dims;
    copies = their source + a small perturbation. Returns vectors and the planted (source, copy) rows."""
    common = rng.normal(size=d)
    common *= 6.0 / np.linalg.norm(common)  # the direction every image shares (norm 6)
    x = common + rng.normal(size=(n, d)) * (1.0 / np.sqrt(d))  # individual parts of norm ~1
    sources = rng.choice(n, n_copies, replace=False)
    copies = x[sources] + rng.normal(size=(n_copies, d)) * (0.1 / np.sqrt(d))  # perturbation of norm ~0.1
    return np.vstack([x, copies]).astype(np.float32), [(int(s), n + k) for k, s in enumerate(sources)]


def _cos(z, i, j):
    return float(z[i] @ z[j] / np.linalg.norm(z[i]) / np.linalg.norm(z[j]))


def test_whitening_separates_copies_from_lookalikes(rng):
    x, planted = _lookalikes_with_copies(rng)
    truth = {frozenset(p) for p in planted}
    n = len(x)
    # raw cosine: look-alikes share the common component, cos ~ 36/37 ~ 0.97 > 0.95, so the plain rule fails
    raw = duplicates.near_duplicate_pairs(x, 0.95, n_neighbors=n - 1)
    raw_pred = {frozenset(p) for p in zip(raw["i"], raw["j"])}
    assert truth <= raw_pred and len(raw_pred - truth) > 1000
    # whitened: look-alikes ~ independent unit vectors in 32 dims (|cos| < 0.8), copies keep cos ~ 1 - 0.1^2/2
    z = whitening.pca_whiten(x, 32)
    assert z.shape == (n, 32) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    got = duplicates.near_duplicate_pairs(z, 0.95, n_neighbors=20)
    assert {frozenset(p) for p in zip(got["i"], got["j"])} == truth
    assert min(_cos(z, a, b) for a, b in planted) > 0.95
    # independent check of the transform: whitened coordinates of the fitted data are uncorrelated
    # with equal variance before the final l2 step (closed form of PCA whitening)
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    w = xc @ vt[:32].T / (s[:32] / np.sqrt(n - 1))
    assert np.allclose(np.cov(w, rowvar=False), np.eye(32), atol=1e-3)
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)  # component signs are arbitrary: compare cosines
    assert np.allclose(wn @ wn.T, z @ z.T, atol=1e-4)


def test_power_zero_is_pca_projection_and_bad_input(rng):
    x = rng.normal(size=(50, 10)).astype(np.float32)
    z = whitening.pca_whiten(x, 10 - 1, power=0.0)
    xc = x - x.mean(0)
    proj = xc @ np.linalg.svd(xc, full_matrices=False)[2][:9].T
    # a projection on 9 of 10 orthonormal directions: cosines between rows are those of the projected data
    want = proj / np.linalg.norm(proj, axis=1, keepdims=True)
    assert np.allclose(z @ z.T, want @ want.T, atol=1e-4)
    with pytest.raises(ValueError, match="n_components"):
        whitening.pca_whiten(x, 10)
    with pytest.raises(ValueError, match="n_components"):
        whitening.pca_whiten(x, 0)
    with pytest.raises(ValueError, match="NaN"):
        whitening.pca_whiten(np.full((5, 3), np.nan), 1)


def test_mirror_averaging(rng):
    z, zf = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    # an image whose mirror-view vector is another image's own vector and vice versa (a mirrored copy)
    a = whitening.flip_averaged(np.vstack([z[0], zf[0]]), np.vstack([zf[0], z[0]]))
    assert np.allclose(a[0], a[1], atol=1e-6)
    zf_missing = zf.copy()
    zf_missing[2] = np.nan  # unreadable mirror falls back to the image's own vector
    d = whitening.duplicate_descriptors(z, zf_missing)
    assert np.allclose(d[2], z[2] / np.linalg.norm(z[2]), atol=1e-6)
    assert np.allclose(whitening.duplicate_descriptors(z), z / np.linalg.norm(z, axis=1, keepdims=True), atol=1e-6)


def test_whitening_of_a_small_collection_is_capped_and_said(rng):
    """Fewer images than ``n_components`` (a user's small cohort) caps the whitening at n - 1 dimensions."""
    n, d = 10, 50
    x = rng.normal(size=(n, d)).astype(np.float32)
    assert whitening.whitening_dims(256, n, d) == n - 1
    assert whitening.whitening_dims(256, 300, 40) == 39  # the vector dimension caps too
    assert whitening.whitening_dims(5, 300, 40) == 5 and whitening.whitening_dims(0, n, d) == 0
    assert whitening.whitening_dims(256, 1, d) == 0  # a single image cannot be whitened at all
    with pytest.warns(UserWarning, match=r"capped at 9 dimensions: 10 descriptors of dimension 50 .* to 256"):
        z = whitening.duplicate_descriptors(x, n_components=256)
    assert z.shape == (n, n - 1)
    # closed form: centred unit rows projected on all n - 1 principal directions, each divided by its
    # standard deviation, then l2-normalised; row cosines are independent of the directions' signs
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    uc = u - u.mean(0)
    _, s, vt = np.linalg.svd(uc, full_matrices=False)
    w = uc @ vt[: n - 1].T / (s[: n - 1] / np.sqrt(n - 1))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    np.testing.assert_allclose(z @ z.T, w @ w.T, atol=1e-4)
    with pytest.raises(ValueError, match="n_components must be in"):  # the strict function stays strict
        whitening.pca_whiten(x, 256)
