"""Degree-corrected effective resistance of a graph (paper eqs. 9-11).

For a connected graph with adjacency ``A``, degrees ``d`` and Laplacian ``L = D - A`` (eq. 9),
the effective resistance is ``R_ij = L+_ii + L+_jj - 2 L+_ij`` (eq. 10) and von Luxburg's
correction removes the part that, in large random geometric graphs, only depends on the two
degrees (eq. 11)::

    R~_ij = R_ij - 1/d_i - 1/d_j + 2 A_ij / (d_i d_j),     R~_ii = 0.

Two ways to compute it:

``corrected_resistance`` (exact, dense)
    ``L+`` of a connected component is ``(L + J/n)^-1 - J/n`` with ``J`` the all-ones matrix;
    the ``J/n`` terms cancel in eq. 10, so ``R`` follows from the inverse of the positive
    definite ``L + J/n``, obtained in place with a Cholesky factorisation (LAPACK ``potrf`` +
    ``potri``, about ``n^3`` flops and one ``n x n`` float64 buffer; no SVD).
``spectral_corrected_resistance`` (approximate, sparse)
    With the normalised Laplacian ``L_sym = I - D^-1/2 A D^-1/2 = sum_k lambda_k u_k u_k^T``,
    eq. 11 equals ``sum_{k>=2} (1 - lambda_k)^2 / lambda_k * (u_ki/sqrt(d_i) - u_kj/sqrt(d_j))^2``
    (von Luxburg, Radl & Hein 2014), a squared Euclidean distance between spectral coordinates
    dominated by the smallest eigenvalues. Keeping the leading ``m`` eigenvectors (ARPACK) and
    estimating the rest of the spectrum from two exact identities (see the function) gives
    corrected resistances for graphs far too large for a dense inverse.

Cost of the dense path (``tests/benchmarks/bench_holes.py``, k-NN graph + eqs. 10-11 on 2 cores
shared with other jobs, so seconds are upper bounds): n = 2,000 / 5,000 / 10,000 landmarks took
4.7 / 16 / 109 s with peak RSS 212 / 394 / 1,000 MiB — time ~ n^3, memory ~ 8 n^2 bytes, so
24 GiB holds the buffer up to n ~ 50,000. A plain ``np.linalg.pinv`` pipeline took 82-134 s /
404-571 MiB at n = 2,000 and 733 s / 1,940 MiB at n = 5,000.

Components: resistance between different connected components is infinite. It is replaced by a
finite value, ``between_factor`` times the largest within-component corrected resistance, so
that a Vietoris-Rips filtration joins components only after every component is a full simplex:
no H1 class that lives inside a component is cut short, and the classes created when components
join are born and die at that same value (zero persistence).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg.lapack as lapack
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from skinmap.analysis.topology.graph import graph_components

__all__ = [
    "graph_laplacian",
    "resistance_from_pinv_dense",
    "corrected_resistance",
    "spectral_coordinates",
    "spectral_corrected_resistance",
    "between_component_value",
]

_BLOCK = 2048


def _check_adjacency(adjacency) -> sp.csr_matrix:
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got {a.shape}")
    if a.nnz and (a.data < 0).any():
        raise ValueError("adjacency has negative weights")
    if abs(a - a.T).sum() > 1e-9 * max(1.0, abs(a).sum()):
        raise ValueError("adjacency must be symmetric (an undirected graph)")
    if a.diagonal().any():
        raise ValueError("adjacency must have no self-loops (zero diagonal)")
    return a


def graph_laplacian(adjacency) -> sp.csr_matrix:
    """``L = D - A`` (eq. 9) as a sparse matrix."""
    a = _check_adjacency(adjacency)
    return (sp.diags(np.asarray(a.sum(axis=1)).ravel()) - a).tocsr()


def _inverse_shifted_laplacian(adjacency: sp.csr_matrix) -> np.ndarray:
    """``(L + J/n)^-1`` of a connected graph as a C-ordered float64 array (one n x n buffer)."""
    n = adjacency.shape[0]
    m = np.full((n, n), 1.0 / n)
    lap = graph_laplacian(adjacency).tocoo()
    np.add.at(m, (lap.row, lap.col), lap.data)
    # A symmetric C-ordered matrix is its own Fortran-ordered transpose: factorise in place.
    mf = m.T
    chol, info = lapack.dpotrf(mf, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"Cholesky of L + J/n failed (info={info}); is the component connected?"
        )
    inv, info = lapack.dpotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse from Cholesky failed (info={info})")
    out = inv.T  # C-ordered view of the same buffer when LAPACK worked in place
    # potri fills the upper triangle of the Fortran array = lower triangle of the C view.
    if not np.shares_memory(out, m):
        out = np.ascontiguousarray(out)
    # Lower triangle of `out` is valid; mirror it to the upper triangle.
    _symmetrize_lower_inplace(out)
    return out


def _symmetrize_lower_inplace(m: np.ndarray) -> None:
    """Copy the lower triangle of a square array onto its upper triangle, blockwise."""
    n = m.shape[0]
    for i0 in range(0, n, _BLOCK):
        i1 = min(i0 + _BLOCK, n)
        block = m[i0:i1, i0:i1]
        block[:] = np.tril(block) + np.tril(block, -1).T
        if i1 < n:
            m[i0:i1, i1:] = m[i1:, i0:i1].T


def resistance_from_pinv_dense(pinv: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``R_ij = P_ii + P_jj - 2 P_ij`` (eq. 10), in place on ``pinv`` when ``out is pinv``."""
    diag = np.diag(pinv).copy()
    if out is None:
        out = np.empty_like(pinv)
    n = pinv.shape[0]
    for i0 in range(0, n, _BLOCK):
        i1 = min(i0 + _BLOCK, n)
        blk = out[i0:i1]
        np.multiply(pinv[i0:i1], -2.0, out=blk)
        blk += diag[None, :]
        blk += diag[i0:i1, None]
    return out


def _apply_degree_correction(r: np.ndarray, adjacency: sp.csr_matrix) -> None:
    """Eq. 11 in place on a dense resistance matrix of one connected graph; zero diagonal."""
    deg = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_deg = 1.0 / deg
    n = r.shape[0]
    for i0 in range(0, n, _BLOCK):
        i1 = min(i0 + _BLOCK, n)
        blk = r[i0:i1]
        blk -= inv_deg[None, :]
        blk -= inv_deg[i0:i1, None]
    coo = adjacency.tocoo()
    r[coo.row, coo.col] += 2.0 * coo.data * inv_deg[coo.row] * inv_deg[coo.col]
    np.fill_diagonal(r, 0.0)
    # Eq. 11 is a sum of non-negative terms; tiny negatives are round-off.
    np.maximum(r, 0.0, out=r)


def between_component_value(within_max: float, between_factor: float) -> float:
    """The finite stand-in for the infinite resistance between components.

    ``between_factor * within_max`` (``within_max`` = largest within-component corrected
    resistance); falls back to ``between_factor`` when every component is a single point.
    """
    if between_factor <= 1.0:
        raise ValueError(f"between_factor must be > 1, got {between_factor}")
    return float(between_factor * within_max) if within_max > 0 else float(between_factor)


def corrected_resistance(
    adjacency,
    *,
    corrected: bool = True,
    between_factor: float = 2.0,
    dtype=np.float64,
) -> np.ndarray:
    """Dense (degree-corrected) effective resistance between all nodes (eqs. 10-11).

    Exact, per connected component, via the in-place Cholesky inverse of ``L + J/n``.
    Between components the value is :func:`between_component_value`. Memory: one ``n x n``
    float64 buffer for a connected graph (0.8 GB at n = 10,000), plus the output for several
    components. Time: about ``n^3`` flops (LAPACK, multi-threaded).

    ``corrected=False`` returns the plain effective resistance of eq. 10.
    """
    a = _check_adjacency(adjacency)
    n = a.shape[0]
    if n == 0:
        return np.zeros((0, 0), dtype=dtype)
    n_comp, labels = graph_components(a)
    if n_comp == 1:
        r = _component_resistance(a, corrected)
        return r if r.dtype == dtype else r.astype(dtype)
    out = np.zeros((n, n), dtype=dtype)
    within_max = 0.0
    members = [np.flatnonzero(labels == c) for c in range(n_comp)]
    for idx in members:
        if idx.size == 1:
            continue
        r = _component_resistance(a[idx][:, idx], corrected)
        out[np.ix_(idx, idx)] = r
        within_max = max(within_max, float(r.max()))
    between = between_component_value(within_max, between_factor)
    same = labels[:, None] == labels[None, :]
    out[~same] = between
    return out


def _component_resistance(a: sp.csr_matrix, corrected: bool) -> np.ndarray:
    g = _inverse_shifted_laplacian(a)
    r = resistance_from_pinv_dense(g, out=g)
    if corrected:
        _apply_degree_correction(r, a)
    else:
        np.fill_diagonal(r, 0.0)
        np.maximum(r, 0.0, out=r)
    return r


def spectral_coordinates(
    adjacency, n_eigenvectors: int, *, tol: float = 1e-8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading eigenpairs of ``D^-1/2 A D^-1/2`` of a *connected* graph, trivial pair removed.

    Returns ``(lam, u_over_sqrt_d, deg)``: the ``m`` smallest non-zero eigenvalues ``lam`` of
    ``L_sym``, the eigenvectors divided row-wise by ``sqrt(d)`` (shape ``(n, m)``), and degrees.
    """
    a = _check_adjacency(adjacency)
    n = a.shape[0]
    deg = np.asarray(a.sum(axis=1)).ravel()
    if (deg == 0).any():
        raise ValueError("graph has isolated nodes; spectral coordinates need a connected graph")
    m = int(min(n_eigenvectors, n - 2))
    if m < 1:
        raise ValueError(f"graph with {n} nodes is too small for the spectral approximation")
    inv_sqrt = 1.0 / np.sqrt(deg)
    sym = sp.diags(inv_sqrt) @ a @ sp.diags(inv_sqrt)
    v0 = np.sqrt(deg) + np.random.default_rng(seed).standard_normal(n) * 1e-3
    if m + 1 >= n // 4:  # ARPACK is slow for a large share of the spectrum: dense is cheaper
        mu, u = np.linalg.eigh(sym.toarray())
        mu, u = mu[-(m + 1) :], u[:, -(m + 1) :]
    else:
        mu, u = eigsh(sym, k=m + 1, which="LA", tol=tol, v0=v0)
    order = np.argsort(-mu)
    mu, u = mu[order], u[:, order]
    lam = 1.0 - mu
    # Drop the trivial eigenvector (lam = 0, u proportional to sqrt(d)) of a connected graph.
    lam, u = lam[1:], u[:, 1:]
    if (lam <= 1e-10).any():
        raise ValueError("graph is not connected (several zero eigenvalues); split components first")
    return lam, u * inv_sqrt[:, None], deg


def _pairwise_sq(x: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", x, x)
    out = -2.0 * (x @ x.T)
    out += sq[:, None]
    out += sq[None, :]
    np.maximum(out, 0.0, out=out)
    return out


def spectral_corrected_resistance(
    adjacency,
    n_eigenvectors: int = 100,
    *,
    rows: np.ndarray | None = None,
    tail: str = "jensen",
    between_factor: float = 2.0,
    dense_below: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Approximate corrected resistance (eq. 11) among ``rows`` from the leading eigenvectors.

    With ``w_k(i,j) = (u_ki/sqrt(d_i) - u_kj/sqrt(d_j))^2`` and ``f(l) = (1-l)^2 / l``, eq. 11 is
    ``sum_{k>=2} f(lambda_k) w_k``. The ``m`` leading terms are computed exactly. For the rest
    (``tail="jensen"``), two identities hold exactly for ``i != j`` without knowing the tail::

        sum_{k>=2} w_k          = 1/d_i + 1/d_j
        sum_{k>=2} lambda_k w_k = 1/d_i + 1/d_j + 2 A_ij / (d_i d_j)

    so the tail's weight ``W`` and its weighted mean eigenvalue ``l`` are known per pair, and
    the tail is estimated as ``W * f(l)`` (the Jensen bound of ``sum W_k / lambda_k``).
    ``tail="none"`` keeps only the ``m`` leading terms (a lower bound).

    Works per connected component; components with at most ``dense_below`` nodes (default
    ``4 * n_eigenvectors``) use the exact dense path. Returns a dense float64
    ``(len(rows), len(rows))`` matrix (``rows=None``: all nodes).
    """
    if tail not in ("jensen", "none"):
        raise ValueError(f"tail must be 'jensen' or 'none', got {tail!r}")
    a = _check_adjacency(adjacency)
    n = a.shape[0]
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError("rows out of range")
    dense_below = 4 * n_eigenvectors if dense_below is None else dense_below
    n_comp, labels = graph_components(a)
    out = np.zeros((rows.size, rows.size))
    within_max = 0.0
    row_labels = labels[rows]
    for c in range(n_comp):
        idx = np.flatnonzero(labels == c)
        sel = np.flatnonzero(row_labels == c)  # positions in `rows` from this component
        if sel.size == 0 or idx.size == 1:
            continue
        local = np.searchsorted(idx, rows[sel])
        sub = a[idx][:, idx]
        if idx.size <= dense_below:
            r = _component_resistance(sub, corrected=True)[np.ix_(local, local)]
        else:
            r = _spectral_block(sub, n_eigenvectors, local, tail, seed)
        out[np.ix_(sel, sel)] = r
        within_max = max(within_max, float(r.max()))
    if n_comp > 1:
        between = between_component_value(within_max, between_factor)
        out[row_labels[:, None] != row_labels[None, :]] = between
    return out


def _spectral_block(
    a: sp.csr_matrix, m: int, local: np.ndarray, tail: str, seed: int
) -> np.ndarray:
    lam, phi, deg = spectral_coordinates(a, m, seed=seed)
    f = (1.0 - lam) ** 2 / lam
    y = phi[local] * np.sqrt(f)[None, :]
    r = _pairwise_sq(y)
    if tail == "jensen":
        p = phi[local]
        inv_d = 1.0 / deg[local]
        sub_a = a[local][:, local].toarray()
        w_all = inv_d[:, None] + inv_d[None, :]
        lw_all = w_all + 2.0 * sub_a * inv_d[:, None] * inv_d[None, :]
        w_tail = w_all - _pairwise_sq(p)
        lw_tail = lw_all - _pairwise_sq(p * np.sqrt(lam)[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            lbar = lw_tail / w_tail
            est = w_tail * (lbar + 1.0 / lbar - 2.0)
        est = np.where((w_tail > 1e-12) & (lbar > 1e-12) & np.isfinite(est), est, 0.0)
        r += np.maximum(est, 0.0)
    np.fill_diagonal(r, 0.0)
    return r
