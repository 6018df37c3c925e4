"""The evaluation split: one role per image, decided once, before any training (issue 15).

Every image row gets a ``role`` in {``"train"``, ``"test"``, ``"holdout"``}:

``holdout``
    every row of the datasets named in :attr:`EvaluationSplitConfig.held_out_datasets` (whole
    datasets, as the paper excluded DDI and PAD-UFES-20 from pre-training), plus any row grouped
    with one of them (its lesion, its patient or a near-duplicate of it in another dataset);
``test``
    a share :attr:`~EvaluationSplitConfig.test_fraction` of the remaining rows, drawn **by group**
    within each dataset;
``train``
    the rest: the only rows whose pixels or captions the member encoders, the fusion projector and
    every probe may learn from.

The groups (:func:`group_ids`) are the connected components (union-find) of four relations: same
dataset-qualified lesion id, same dataset-qualified patient id, and two near-duplicate relations
found without any training: a cosine threshold on a frozen pretrained encoder's vectors
(:func:`skinmap.analysis.quality.duplicates.near_duplicate_pairs`), and copies accepted by
registered-pixel verification of that encoder's nearest neighbours (the quality chapter's rule:
:func:`skinmap.analysis.quality.registration.registered_candidates` then
:func:`skinmap.analysis.quality.verification.accepted_pairs`; the pixels are read by the caller,
the accepted pairs come in as ``copy_pairs``). Rows of one group never straddle train, test and
holdout (:func:`assign_roles`); :func:`straddling_pairs` checks that for any list of pairs.

:func:`training_mask` is the one place the ``evaluation_protocol`` switch acts: ``"strict"`` trains
on ``train`` rows only; ``"legacy"`` (every row, the behaviour before issue 15) exists only so the
leak test can show what it inflates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from skinmap.analysis.probes import TEST_FRACTION_BOUNDS
from skinmap.analysis.quality.duplicates import near_duplicate_pairs
from skinmap.analysis.quality.verification import CopyVerificationConfig
from skinmap.config import check_choice, check_knobs, knob

__all__ = [
    "ROLES",
    "Role",
    "Protocol",
    "EvaluationSplitConfig",
    "group_ids",
    "assign_roles",
    "evaluation_split",
    "training_mask",
    "held_out_names",
    "straddling_pairs",
    "role_pair_counts",
]

Role = Literal["train", "test", "holdout"]
ROLES: tuple[str, ...] = ("train", "test", "holdout")
Protocol = Literal["strict", "legacy"]


@dataclass(frozen=True)
class EvaluationSplitConfig:
    """How the evaluation split is drawn (:func:`evaluation_split`)."""

    held_out_datasets: tuple[str, ...] = knob((), description="whole datasets kept out of all training and scored apart")
    test_fraction: float = knob(0.2, **TEST_FRACTION_BOUNDS,
                                description="share of the non-holdout rows of each dataset drawn (by group) as test")
    duplicate_threshold: float | None = knob(
        0.95, gt=0.0, le=1.0,
        description="cosine similarity (frozen pretrained vectors) from which two images are one near-duplicate group; "
                    "None = no near-duplicate relation")
    duplicate_n_neighbors: int = knob(10, ge=1, le=1000, description="neighbours searched per image for near-duplicates")
    duplicate_mutual_top: int = knob(
        2, ge=0, le=1000,
        description="keep a near-duplicate pair only when each is among the other's r nearest (0 = plain threshold)")
    duplicate_verify_pixels: bool = knob(
        False, description="also link copies accepted by registered-pixel verification of the frozen member's "
                           "nearest neighbours (the quality chapter's rule; the accepted pairs are passed as copy_pairs)")
    duplicate_verify_threshold: float = knob(
        0.95, gt=0.0, le=1.0,
        description="registered-pixel similarity from which a verified candidate pair is one copy group (below it, "
                    "from verify_ratio_floor, the ratio test); the quality chapter's default_threshold")
    seed: int = knob(0, ge=0, description="seed of the test draw")
    verification: CopyVerificationConfig = field(default_factory=CopyVerificationConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "held_out_datasets", tuple(str(d) for d in self.held_out_datasets))
        if not isinstance(self.verification, CopyVerificationConfig):
            raise TypeError(f"verification must be a CopyVerificationConfig, got {type(self.verification).__name__}")
        check_knobs(self)

    def group_rule(self) -> str:
        """A one-line statement of the group relation, exported beside the roles."""
        dup = ("no near-duplicate relation" if self.duplicate_threshold is None else
               f"near-duplicate = cosine >= {self.duplicate_threshold:g} among {self.duplicate_n_neighbors} nearest "
               f"(mutual top {self.duplicate_mutual_top}) on the frozen pretrained member")
        v = self.verification
        copy = ("no pixel-verified copy relation" if not self.duplicate_verify_pixels else
                f"copy = registered-pixel similarity >= {self.duplicate_verify_threshold:g} (or the ratio test "
                f"{v.ratio:g} from {v.ratio_floor:g}) on {v.size} px thumbnails of each image's {v.n_candidates} nearest "
                f"frozen-member neighbours (cosine >= {v.candidate_floor:g}) and rotation-invariant descriptor neighbours")
        return f"union-find over: same dataset+lesion_id; same dataset+patient_id; {dup}; {copy}"


def _qualified(datasets: pd.Series, ids, name: str) -> pd.Series:
    ids = pd.Series(ids, index=datasets.index, dtype="string") if ids is not None else None
    if ids is None:
        return pd.Series(pd.NA, index=datasets.index, dtype="string")
    return datasets + "\x1f" + name + "\x1f" + ids


def group_ids(
    datasets: Sequence[str],
    lesion_ids: Sequence | None = None,
    patient_ids: Sequence | None = None,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    clusters: Sequence[Sequence] = (),
) -> np.ndarray:
    """Group label per row: connected components of the lesion, patient and near-duplicate relations.

    This is the one definition of "group" in the book: the evaluation split, the probes' folds and
    bootstraps, and retrieval's exclusions (a query's own group never counts as a hit) all use it.

    Parameters
    ----------
    datasets : sequence of str, length n
        Dataset of each row; lesion and patient ids are only unique within a dataset, so they are
        qualified by it.
    lesion_ids, patient_ids : sequence, length n, optional
        Provider ids (NA = unknown: the row joins no group through that relation).
    pairs : (ndarray, ndarray) of row numbers, optional
        Near-duplicate edges ``(i, j)`` (e.g. :func:`near_duplicate_pairs` on frozen vectors).
    clusters : sequence of label columns, each of length n, optional
        Labels that are global across datasets (e.g. an earlier split's ``group`` column or the
        quality chapter's near-duplicate clusters); rows sharing a label are linked, NA links nothing.

    Returns
    -------
    ndarray of int, shape (n,)
        Labels ``0..G-1``; rows sharing a lesion, a patient or a near-duplicate edge (transitively)
        share a label. A row in no relation is its own group.
    """
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string").fillna("?")
    n = len(datasets)
    src, dst = [], []
    relations = [(lesion_ids, "lesion", True), (patient_ids, "patient", True)]
    relations += [(labels, f"cluster{c}", False) for c, labels in enumerate(clusters)]
    for ids, name, local in relations:
        if ids is None:
            continue
        if len(ids) != n:
            raise ValueError(f"{name} ids have {len(ids)} rows, datasets {n}")
        values = np.asarray(pd.Series(np.asarray(ids, dtype=object)).astype(object), dtype=object)
        key = (_qualified(datasets, values, name) if local
               else pd.Series(values, index=datasets.index, dtype="string"))
        known = np.flatnonzero(key.notna().to_numpy())
        codes, _ = pd.factorize(key.iloc[known])
        # a star per id: every row of an id is linked to the id's first row
        first = np.full(int(codes.max()) + 1 if codes.size else 0, -1, np.int64)
        for row, code in zip(known, codes):
            if first[code] < 0:
                first[code] = row
        src.append(known)
        dst.append(first[codes])
    if pairs is not None:
        i, j = (np.asarray(p, dtype=np.int64) for p in pairs)
        if i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
            raise ValueError("near-duplicate pair outside the rows")
        src.append(i)
        dst.append(j)
    if n == 0:
        return np.zeros(0, np.int64)
    r = np.concatenate(src) if src else np.zeros(0, np.int64)
    c = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def assign_roles(datasets: Sequence[str], groups: np.ndarray, config: EvaluationSplitConfig) -> np.ndarray:
    """Role of each row: holdout datasets (and their groups), then a by-group test draw per dataset.

    A group touching a held-out dataset is ``holdout`` entirely (a duplicate of a held-out image in
    a training dataset would otherwise leak it). Every other group has a home dataset (that of its
    first row); within each home dataset the groups are put in a random order (``default_rng(seed)``,
    one permutation per dataset in sorted-name order) and taken as ``test`` while the test rows stay
    at or below ``test_fraction`` of the dataset's rows, always at least one group when the dataset
    has two or more. The rest is ``train``.

    Parameters
    ----------
    datasets : sequence of str, length n
    groups : ndarray of int, shape (n,)
        From :func:`group_ids`.
    config : EvaluationSplitConfig

    Returns
    -------
    ndarray of str, shape (n,)
        ``"train"``, ``"test"`` or ``"holdout"``; rows with one group label have one role.
    """
    datasets = pd.Series(np.asarray(datasets, dtype=object)).astype("string").fillna("?").to_numpy(dtype=object)
    groups = np.asarray(groups)
    n = len(datasets)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}, expected ({n},)")
    _, g = np.unique(groups, return_inverse=True)
    n_groups = int(g.max()) + 1 if n else 0
    roles = np.full(n, "train", dtype=object)
    held_rows = np.isin(datasets, list(config.held_out_datasets))
    held_groups = np.zeros(n_groups, bool)
    held_groups[g[held_rows]] = True
    roles[held_groups[g]] = "holdout"
    free = ~held_groups[g]
    # home dataset of a group: the dataset of its first row
    first = np.full(n_groups, n, np.int64)
    np.minimum.at(first, g, np.arange(n))
    sizes = np.bincount(g, minlength=n_groups)
    rng = np.random.default_rng(config.seed)
    test_groups = np.zeros(n_groups, bool)
    home_dataset = datasets[first]
    for name in sorted(set(datasets[free])):
        home = np.flatnonzero((home_dataset == name) & ~held_groups)
        if home.size < 2:
            continue
        order = home[rng.permutation(home.size)]
        budget = config.test_fraction * sizes[home].sum()
        taken = np.cumsum(sizes[order]) <= budget
        taken[0] = True
        test_groups[order[taken]] = True
    roles[free & test_groups[g]] = "test"
    return roles


def evaluation_split(
    datasets: Sequence[str],
    lesion_ids: Sequence | None,
    patient_ids: Sequence | None,
    vectors: np.ndarray | None,
    config: EvaluationSplitConfig | None = None,
    *,
    has_vector: np.ndarray | None = None,
    copy_pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Groups and roles of ``n`` image rows: :func:`group_ids` then :func:`assign_roles`.

    Parameters
    ----------
    datasets, lesion_ids, patient_ids : sequences of length n
    vectors : ndarray of shape (n, d), optional
        Frozen pretrained (never trained on these data) l2-normalised vectors for the near-duplicate
        relation; rows flagged ``False`` in ``has_vector`` take part in no near-duplicate pair.
    config : EvaluationSplitConfig
    copy_pairs : (ndarray, ndarray) of row numbers, optional
        Copies accepted on registered pixels (:func:`skinmap.analysis.quality.verification.accepted_pairs`
        at ``config.duplicate_verify_threshold`` on the frozen member's candidates), required when
        ``config.duplicate_verify_pixels`` and ignored otherwise (the switch decides).

    Returns
    -------
    DataFrame
        ``group`` (int) and ``role`` (str) per row, in input order; ``attrs`` hold ``n_pairs`` (cosine
        links), ``n_copy_pairs`` (pixel-verified links), ``n_copy_pairs_new`` (those joining two groups
        that the other relations leave apart) and ``n_groups_without_copies``.
    """
    config = config or EvaluationSplitConfig()
    if config.duplicate_verify_pixels and copy_pairs is None:
        raise ValueError("duplicate_verify_pixels is on but no copy_pairs were given (verify the frozen member's "
                         "candidates on pixels first, or switch duplicate_verify_pixels off)")
    n = len(datasets)
    pairs = None
    if vectors is not None and config.duplicate_threshold is not None:
        vectors = np.asarray(vectors, dtype=np.float32)
        rows = np.arange(n) if has_vector is None else np.flatnonzero(np.asarray(has_vector, bool))
        found = near_duplicate_pairs(vectors[rows], config.duplicate_threshold,
                                     n_neighbors=config.duplicate_n_neighbors, mutual_top=config.duplicate_mutual_top)
        pairs = (rows[found["i"].to_numpy()], rows[found["j"].to_numpy()])
    base = group_ids(datasets, lesion_ids, patient_ids, pairs)
    groups, n_copy, n_new = base, 0, 0
    if config.duplicate_verify_pixels:
        ci, cj = (np.asarray(p, dtype=np.int64) for p in copy_pairs)
        if ci.shape != cj.shape:
            raise ValueError("copy_pairs: the two index arrays differ in length")
        n_copy, n_new = int(ci.size), int(np.count_nonzero(base[ci] != base[cj]))
        groups = group_ids(datasets, clusters=[base], pairs=(ci, cj))
    out = pd.DataFrame({"group": groups, "role": assign_roles(datasets, groups, config)})
    out.attrs.update(n_pairs=0 if pairs is None else int(pairs[0].size), n_copy_pairs=n_copy,
                     n_copy_pairs_new=n_new, n_groups_without_copies=int(np.unique(base).size))
    return out


def training_mask(roles: Sequence[str], protocol: Protocol = "strict") -> np.ndarray:
    """Rows a model may learn from: ``train`` rows (strict) or every row (legacy, leak test only)."""
    check_choice("evaluation_protocol", protocol, Protocol)
    roles = np.asarray(roles, dtype=object)
    unknown = set(roles.tolist()) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(map(str, unknown))}; expected {ROLES}")
    return roles == "train" if protocol == "strict" else np.ones(roles.shape, bool)


def held_out_names(datasets: Sequence[str], roles: Sequence[str]) -> list[str]:
    """Datasets every row of which is ``holdout`` (the held-out datasets of a split), sorted."""
    table = pd.DataFrame({"d": np.asarray(datasets, dtype=object), "h": np.asarray(roles, dtype=object) == "holdout"})
    whole = table.groupby("d")["h"].all()
    return sorted(str(d) for d in whole.index[whole.to_numpy()])


def straddling_pairs(pairs: pd.DataFrame, uids: Sequence[str], roles: Sequence[str]) -> pd.DataFrame:
    """The pairs whose two images have different roles (e.g. a copy with one image in ``train`` and
    the other in ``test`` or ``holdout``): what a leak-free split never has.

    Parameters
    ----------
    pairs : DataFrame
        ``image_a``, ``image_b`` (uids) and any other columns (kept), e.g. the quality chapter's
        accepted copy pairs.
    uids, roles : sequences of length n
        The split: role of each uid (:func:`evaluation_split`). A pair with an image outside it is
        an error (the split is older than the pairs).

    Returns
    -------
    DataFrame
        The straddling rows of ``pairs`` (index reset) with ``role_a`` and ``role_b`` added.
    """
    with_roles = _pair_roles(pairs, uids, roles)
    return with_roles.loc[with_roles["role_a"] != with_roles["role_b"]].reset_index(drop=True)


def _pair_roles(pairs: pd.DataFrame, uids: Sequence[str], roles: Sequence[str]) -> pd.DataFrame:
    """``pairs`` with the ``role_a`` and ``role_b`` of their two images (an image without a role is an error)."""
    role_of = pd.Series(np.asarray(roles, dtype=object), index=pd.Index(np.asarray(uids, dtype=object).astype(str)))
    if not role_of.index.is_unique:
        raise ValueError("uids are not unique")
    a = pd.Series(pairs["image_a"], dtype=object).astype(str)
    b = pd.Series(pairs["image_b"], dtype=object).astype(str)
    unknown = sorted(set(a[~a.isin(role_of.index)]) | set(b[~b.isin(role_of.index)]))
    if unknown:
        raise ValueError(f"{len(unknown)} image(s) of the pairs have no role, e.g. {unknown[:3]}")
    return pairs.reset_index(drop=True).assign(role_a=role_of.reindex(a).to_numpy(), role_b=role_of.reindex(b).to_numpy())


def role_pair_counts(pairs: pd.DataFrame, uids: Sequence[str], roles: Sequence[str]) -> pd.DataFrame:
    """How many ``pairs`` join images of each pair of roles (e.g. ``"test & train"``), and whether that
    pair of roles straddles the split; every pair of roles in :data:`ROLES` is listed, zeros included.

    Returns
    -------
    DataFrame
        Index ``roles`` (``"a & b"``, sorted names), columns ``pairs`` (int) and ``straddles`` (bool).
    """
    with_roles = _pair_roles(pairs, uids, roles)
    label = [" & ".join(sorted((str(x), str(y)))) for x, y in zip(with_roles["role_a"], with_roles["role_b"])]
    counts = pd.Series(label, dtype=object).value_counts()
    names = sorted(set(ROLES) | set(with_roles["role_a"].astype(str)) | set(with_roles["role_b"].astype(str)))
    index = [" & ".join((x, y)) for i, x in enumerate(names) for y in names[i:]]
    out = pd.DataFrame({"pairs": [int(counts.get(k, 0)) for k in index],
                        "straddles": [k.split(" & ")[0] != k.split(" & ")[1] for k in index]},
                       index=pd.Index(index, name="roles"))
    return out
