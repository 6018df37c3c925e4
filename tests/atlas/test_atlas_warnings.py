"""The atlas warns and cleans up: OOD threshold, quality flags, group exclusions, collapsed
duplicates, IVF versus exact search, the profile banner data and dataset pages.

Every expectation is computed independently here (a dense similarity matrix, planted flags and
clusters), never read back from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import _fake_run

OFFTOPIC = (0, 5)
CLUSTERS = ((1, 9, "homogeneous"), (2, 6, "diagnosis"), (13, 17, "homogeneous"))
FLAGGED = {0, 5, 2, 6}  # off-topic rows and both members of the conflicting cluster


@pytest.fixture(scope="module")
def flagged_run(tmp_path_factory):
    run = _fake_run.make_fake_run(tmp_path_factory.mktemp("flagged-run"))
    return _fake_run.add_quality_exports(run, offtopic_rows=OFFTOPIC, clusters=CLUSTERS)


@pytest.fixture(scope="module")
def app(flagged_run, tmp_path_factory):
    from skinmap.atlas.app import AtlasApp

    a = AtlasApp.from_run_dir(flagged_run, cache_dir=tmp_path_factory.mktemp("cache"),
                              embed_fn=_fake_run.colour_embed_fn(), k_max=500)
    yield a
    a.close()


def _unit_vectors(run):
    v = np.load(run / "embedding" / "fused.npy").astype(np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _group_partner():
    partner = {}
    for a, b, _ in CLUSTERS:
        partner[a], partner[b] = b, a
    return partner


def test_ood_threshold_is_the_brute_force_percentile_of_atlas_nn_similarities(app, flagged_run):
    z = _unit_vectors(flagged_run)
    n = len(z)
    sims = z @ z.T
    eligible = np.array([i not in FLAGGED for i in range(n)])
    partner = _group_partner()
    nn = []
    for i in np.flatnonzero(eligible):
        s = sims[i].copy()
        s[~eligible] = -np.inf
        s[i] = -np.inf
        if i in partner:
            s[partner[i]] = -np.inf  # its own group (near-duplicate cluster) is never its neighbour
        nn.append(s.max())
    want = np.percentile(nn, 1.0)
    assert app.index.ood_threshold == pytest.approx(want, abs=1e-5)
    assert app.index.nn_similarities.size == eligible.sum()
    assert app.options()["ood"]["threshold"] == pytest.approx(want, abs=1e-5)


def test_flagged_images_are_out_of_default_results_and_shown_with_reasons_on_request(app):
    n = len(app.metadata)
    hidden = app.neighbours(uid="gamma/img0011", k=n)  # row 11: no group, not flagged
    rows = {r["row"] for r in hidden["results"]}
    assert rows.isdisjoint(FLAGGED) and not hidden["include_flagged"]
    shown = app.neighbours(uid="gamma/img0011", k=n, include_flagged=True)
    by_row = {r["row"]: r for r in shown["results"]}
    assert {0, 5} <= set(by_row)
    assert all(any("off-topic" in f for f in by_row[r]["flags"]) for r in (0, 5))
    conflict = [by_row[r] for r in (2, 6) if r in by_row]
    assert len(conflict) == 1  # one card for the conflicting pair ...
    assert conflict[0]["copies"] == 2 and any("conflicting" in f for f in conflict[0]["flags"])
    assert all(not r["flags"] for r in shown["results"] if r["row"] not in FLAGGED)


@pytest.mark.parametrize("uid,group", [("alpha/img0001", {1, 9}), ("alpha/img0013", {13, 17}), ("gamma/img0011", {11})])
def test_a_catalog_query_excludes_exactly_its_group(app, uid, group):
    n = len(app.metadata)
    res = app.neighbours(uid=uid, k=n, include_flagged=True)
    rows = {r["row"] for r in res["results"]}
    # every other row comes back, clusters collapsed to one card: expand them to compare
    partner = _group_partner()
    expanded = rows | {partner[r] for r in rows if r in partner}
    assert expanded == set(range(n)) - group
    assert res["query"]["n_excluded_group"] == len(group)


def test_near_duplicates_collapse_to_one_card_with_a_count(app, flagged_run):
    z = _unit_vectors(flagged_run)
    hits = app.index.search(z[1], 6, collapse=True)
    assert 1 in set(hits["row"]) and 9 not in set(hits["row"])
    assert int(hits.loc[hits["row"] == 1, "copies"].iloc[0]) == 2
    assert len(hits) == 6  # k counts cards, not rows
    plain = app.index.search(z[1], 40)
    order = [r for r in plain["row"] if r != 9][:6]
    assert hits["row"].tolist() == order  # same ranking, the duplicate's second copy left out


def test_upload_unlike_the_atlas_is_out_of_distribution_and_a_planted_colour_is_not(app):
    qid = app.upload(_fake_run.png_bytes((120, 120, 120)))  # far from every planted colour
    res = app.neighbours(query_id=qid)
    z = app.index.vectors.astype(np.float64)
    v = app.store.recall(qid).astype(np.float64)
    eligible = [i for i in range(len(z)) if i not in FLAGGED]
    top = float((z[eligible] @ (v / np.linalg.norm(v))).max())
    assert res["ood"]["nearest_similarity"] == pytest.approx(top, abs=1e-4)
    assert res["ood"]["out_of_distribution"] is (top < app.index.ood_threshold) is True
    qid = app.upload(_fake_run.png_bytes(_fake_run.COLOURS[1]))
    assert app.neighbours(query_id=qid)["ood"]["out_of_distribution"] is False


def test_banner_facts_and_dataset_pages(app):
    from skinmap.atlas.app import dataset_pages

    opts = app.options()
    assert opts["profile"] == "demo" and opts["synthetic"] is True
    assert opts["n_flagged"] == len(FLAGGED) and opts["index"]["kind"] == "exact"
    pages = dataset_pages()
    assert pages["PH2"].startswith("https://") and pages["HAM10000"].startswith("https://")
    res = app.neighbours(uid="gamma/img0011", k=3)
    assert all(r["dataset_url"] is None and r["icd10_code"] for r in res["results"])  # invented datasets: no page


def test_ivf_index_when_large_gives_the_exact_answer_when_every_cell_is_probed(flagged_run):
    from skinmap.atlas.search import AtlasIndex, AtlasIndexConfig
    from skinmap.runs import load_atlas

    atlas = load_atlas(flagged_run)
    exact = AtlasIndex(atlas.vectors, atlas.samples, config=AtlasIndexConfig(ivf_min_rows=10_000))
    ivf = AtlasIndex(atlas.vectors, atlas.samples, config=AtlasIndexConfig(ivf_min_rows=100, ivf_nprobe=1000))
    assert exact.kind == "exact" and ivf.kind == "ivf" and ivf.nprobe == ivf.nlist
    z = _unit_vectors(flagged_run)
    for q in z[:10]:
        want = np.argsort(-(z @ q), kind="stable")[:8]
        got = ivf.search(q, 8, filters=None)["row"].to_numpy()
        assert set(got) == set(want)
        assert exact.search(q, 8)["row"].tolist() == ivf.search(q, 8)["row"].tolist()
    filtered = ivf.search(z[3], 5, filters={"dataset": "gamma"})
    assert (filtered["dataset"] == "gamma").all() and len(filtered) == 5
