"""The blockwise dense path of eqs. 10-11 above one block (n > 2,048 nodes).

``_inverse_shifted_laplacian`` mirrors the lower triangle of the Cholesky inverse onto the upper
one block by block, and eqs. 10-11 are applied in row blocks of 2,048; below that size only the
first block runs, so every other test of the dense path misses the off-diagonal blocks. A cycle of
2,100 nodes (two blocks, the second partial) has closed forms for every entry.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from skinmap.analysis.topology import resistance


def _cycle(n: int) -> sp.csr_matrix:
    i = np.arange(n)
    a = sp.coo_matrix((np.ones(n), (i, (i + 1) % n)), shape=(n, n))
    return (a + a.T).tocsr()


def test_block_path_matches_closed_forms_above_one_block():
    n = resistance._BLOCK + 52
    assert n > resistance._BLOCK
    a = _cycle(n)
    ell = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    plain = ell * (n - ell) / n  # effective resistance of a cycle of unit resistors
    # eq. 11 with every degree 2: R - 1/2 - 1/2 + 2 A / 4, zero diagonal (one dense solve: ~5 s)
    corrected = plain - 1.0 + a.toarray() / 2.0
    np.fill_diagonal(corrected, 0.0)
    rc = resistance.corrected_resistance(a)
    np.testing.assert_allclose(rc, rc.T, rtol=0, atol=1e-10)
    # tolerance: the Cholesky inverse of L + J/n at n = 2,100 (condition ~ n^2) carries ~1e-8 error
    np.testing.assert_allclose(rc, np.maximum(corrected, 0.0), atol=1e-6)


def test_block_symmetrisation_against_one_block(monkeypatch, rng):
    # The same random graph with blocks of 2,048 (one block) and of 7 rows (many blocks, the last
    # partial) must give the same matrix: the block path against the one-block computation.
    n = 40
    upper = np.triu(rng.random((n, n)) < 0.2, 1) * rng.uniform(0.5, 2.0, (n, n))
    upper[np.arange(n - 1), np.arange(1, n)] = 1.0  # a path keeps the graph connected
    a = sp.csr_matrix(upper + upper.T)
    one_block = resistance.corrected_resistance(a)
    monkeypatch.setattr(resistance, "_BLOCK", 7)
    np.testing.assert_allclose(resistance.corrected_resistance(a), one_block, rtol=1e-10, atol=1e-12)
    m = np.tril(rng.random((n, n)))
    resistance._symmetrize_lower_inplace(m)
    np.testing.assert_array_equal(m, np.tril(m) + np.tril(m, -1).T)
