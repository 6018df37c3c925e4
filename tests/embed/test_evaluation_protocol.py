"""No test or holdout row's pixels or caption reach a training batch (issue 15).

The data loaders of member training (:class:`ImageTextDataset`) and of the fusion projector
(``fusion._Rows``) are instrumented: every item a batch is built from is recorded, then mapped back
to the image it came from. Under ``strict`` only ``train`` rows may appear; under ``legacy`` the
same instrument does see test and holdout rows (so the check can fail).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.analysis.evaluation_split import EvaluationSplitConfig, evaluation_split, training_mask
from skinmap.embed import fusion as fusion_mod
from skinmap.embed import pipeline as emb
from skinmap.embed.members import training

TINY = {"lr": 1e-3, "batch_size": 8, "max_steps": 2}
SPECS = [
    {"name": "clip_t", "kind": "clip", "partition": "all",
     "config": {"image_size": 16, "patch_size": 8, "vision_width": 32, "text_width": 32, "text_layers": 1,
                "vision_layers": 1, "embed_dim": 16, "context_length": 16, "optim": TINY}},
    {"name": "mae_t", "kind": "mae", "partition": "all",
     "config": {"image_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 1, "decoder_dim": 16,
                "decoder_depth": 1, "optim": TINY}},
]


@pytest.fixture
def atlas(tmp_path):
    """24 distinct images with distinct captions in three datasets; C is held out."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(24):
        p = tmp_path / f"img{k}.png"
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(p)
        rows.append({"uid": f"u{k}", "dataset": "ABC"[k % 3], "image_id": str(k), "path": str(p),
                     "caption": f"clinic code {k}", "lesion_id": str(k // 2), "patient_id": None})
    images = pd.DataFrame(rows)
    split = evaluation_split(images["dataset"], images["lesion_id"], images["patient_id"], None,
                             EvaluationSplitConfig(held_out_datasets=("C",), test_fraction=0.3, seed=0))
    return images, split["role"].to_numpy()


@pytest.fixture
def recorded(monkeypatch):
    """Paths and captions of every item served by a member's training data set."""
    seen = {"paths": [], "captions": []}
    init, getitem = training.ImageTextDataset.__init__, training.ImageTextDataset.__getitem__

    def spy_init(self, paths, image_size, captions=None, tokenizer=None):
        init(self, paths, image_size, captions, tokenizer)
        self._spy_paths, self._spy_captions = list(paths), captions

    def spy_getitem(self, i):
        k = int(self.kept[i])
        seen["paths"].append(self._spy_paths[k])
        if self._spy_captions is not None:
            seen["captions"].append(self._spy_captions[k])
        return getitem(self, i)

    monkeypatch.setattr(training.ImageTextDataset, "__init__", spy_init)
    monkeypatch.setattr(training.ImageTextDataset, "__getitem__", spy_getitem)
    return seen


@pytest.mark.parametrize("protocol", ["strict", "legacy"])
def test_member_batches_hold_train_rows_only(atlas, recorded, tmp_path, protocol):
    images, roles = atlas
    mask = training_mask(roles, protocol)
    _, report = emb.train_members(SPECS, images, tmp_path / "emb", train_rows=mask, split=protocol, progress=False)
    assert all(r["status"] == "trained" for r in report.values())
    role_of_path = dict(zip(images["path"], roles))
    role_of_caption = dict(zip(images["caption"], roles))
    served = {role_of_path[p] for p in recorded["paths"]} | {role_of_caption[c] for c in recorded["captions"]}
    assert recorded["paths"] and recorded["captions"]  # the instrument saw the batches
    if protocol == "strict":
        assert served == {"train"}
    else:
        assert {"test", "holdout"} <= served


@pytest.mark.parametrize("protocol", ["strict", "legacy"])
def test_projector_batches_hold_train_rows_only(atlas, monkeypatch, protocol):
    images, roles = atlas
    n = len(images)
    rng = np.random.default_rng(1)
    members = [rng.standard_normal((n, 8)).astype(np.float32), rng.standard_normal((n, 6)).astype(np.float32)]
    text = rng.standard_normal((n, 5)).astype(np.float32)
    seen = []
    getitem = fusion_mod._Rows.__getitem__

    def spy(self, i):
        item = getitem(self, i)
        seen.append(np.asarray(item["text"]).tobytes())
        return item

    monkeypatch.setattr(fusion_mod._Rows, "__getitem__", spy)
    config = fusion_mod.FusionConfig(out_dim=4, epochs=2, batch_size=8, warmup_steps=0, seed=0)
    emb.train_fusion(members, config, text=text, train_rows=training_mask(roles, protocol), progress=False)
    row_of = {t.tobytes(): k for k, t in enumerate(text)}  # captions are distinct: bytes identify the row
    served = {roles[row_of[b]] for b in seen}
    assert seen
    assert served == {"train"} if protocol == "strict" else {"test", "holdout"} <= served


def test_split_changes_the_training_cache_key(atlas, tmp_path):
    images, roles = atlas
    cache = tmp_path / "cache"
    strict = training_mask(roles, "strict")
    _, first = emb.train_members(SPECS[1:], images, tmp_path / "e1", train_rows=strict, cache_dir=cache,
                                 split=emb.split_digest(images["uid"], roles, "strict"), progress=False)
    _, same = emb.train_members(SPECS[1:], images, tmp_path / "e2", train_rows=strict, cache_dir=cache,
                                split=emb.split_digest(images["uid"], roles, "strict"), progress=False)
    moved = roles.copy()
    moved[np.flatnonzero(roles == "holdout")[0]] = "test"  # same training rows, another split
    _, other = emb.train_members(SPECS[1:], images, tmp_path / "e3", train_rows=strict, cache_dir=cache,
                                 split=emb.split_digest(images["uid"], moved, "strict"), progress=False)
    assert same["mae_t"]["status"] == "cached"
    assert other["mae_t"]["status"] == "trained" and other["mae_t"]["cache_key"] != first["mae_t"]["cache_key"]
