"""Captions: the paper's template and the optional rewrite hook with its fallback."""

from __future__ import annotations

import pandas as pd

from skinmap.data.captions import rewrite_captions, template_caption


def _row(**kw):
    base = dict(modality="TBP", diagnosis="benign skin lesion", body_site="lower extremity", sex="male",
                age_group="60-69", fst=None)
    base.update(kw)
    return base


def test_template_names_every_observed_fact():
    text = template_caption(_row())
    assert text == ("This total body photograph tile shows benign skin lesion on the lower extremity "
                    "for a male patient in his 60s.")


def test_template_leaves_out_missing_fields():
    text = template_caption(_row(body_site=None, sex=None, age_group=None, fst=5, modality="dermoscopy"))
    assert text == "This dermoscopic image shows benign skin lesion, Fitzpatrick skin type 5."
    assert "unrecorded" in template_caption(_row(diagnosis=None))


def test_hook_off_by_default_and_falls_back_on_failure():
    cat = pd.DataFrame([_row(), _row(sex="female", age_group="90+")])
    plain, fallbacks = rewrite_captions(cat)
    assert fallbacks == 0 and plain.iloc[1].endswith("aged 90 or over.")

    calls = []

    def flaky(template, row):
        calls.append(row["sex"])
        if row["sex"] == "female":
            raise RuntimeError("model unavailable")
        return "Benign skin lesion on right leg, male, aged 60-69."

    out, fallbacks = rewrite_captions(cat, flaky)
    assert calls == ["male", "female"] and fallbacks == 1
    assert out.iloc[0] == "Benign skin lesion on right leg, male, aged 60-69."
    assert out.iloc[1] == plain.iloc[1]
    out, fallbacks = rewrite_captions(cat, lambda t, r: "word " * 100, max_words=77)
    assert fallbacks == 2 and out.tolist() == plain.tolist()
