"""Members trained on cached features of frozen pretrained towers (the CPU profiles' members).

On two CPU cores a vision transformer trained from scratch for a few dozen steps learns almost nothing
(issue 20: the mini profile's tiny ViTs were at or below chance on held-out retrieval). The paper's
objectives are kept, but applied where they can learn in that budget: on top of frozen, pretrained
towers whose outputs are computed once per image and cached on disk by image content
(:mod:`skinmap.embed.extract`), so that thousands of optimisation steps cost seconds.

``lit_clip``, ``lit_siglip`` -- locked-image tuning (LiT, Zhai et al. 2022, with both towers locked):
    the frozen EfficientNet-Lite0 image feature ``x`` (1280-d, l2-normalised) and the frozen MiniLM
    caption vector ``t`` (384-d) each pass through a trained projection head, ``u = normalize(g(x))``,
    ``v = normalize(h(t))``, trained with the CLIP loss (softmax InfoNCE, Radford et al. 2021) or the
    SigLIP loss (pairwise sigmoid, Zhai et al. 2023) on (image, caption) pairs of ``train`` rows.
    Captions are templated from metadata, so two images in a batch often share one caption; such a
    pair is a *positive*, not a negative (:func:`caption_positives`): with ``S_ij = [c_i = c_j]``

    $$ L_{\\mathrm{CLIP}} = -\\frac{1}{2B}\\sum_i \\Big[\\sum_j \\tfrac{S_{ij}}{\\sum_l S_{il}} \\log
       \\mathrm{softmax}_j(s\\,u_i\\cdot v_j) + \\sum_j \\tfrac{S_{ji}}{\\sum_l S_{li}} \\log
       \\mathrm{softmax}_j(s\\,v_i\\cdot u_j)\\Big],\\qquad
       L_{\\mathrm{SigLIP}} = -\\frac{1}{B}\\sum_{i,j} \\log\\sigma\\big(z_{ij}(s\\,u_i\\cdot v_j + b)\\big),
       \\; z_{ij} = 2S_{ij} - 1, $$

    which are the papers' losses when every caption in the batch is distinct (``S = I``). The member's
    vector is ``u``.
``dino_head`` -- DINO self-distillation (Caron et al. 2021) on the cached features of augmented
    views (flips and right-angle rotations of the decoded image: a dermoscopic or clinical image has
    no canonical orientation, and each view is one more cached EfficientNet pass over the ``train``
    rows). A student ``g_s`` (MLP to ``embed_dim``, l2-normalised, then weight-normalised prototypes)
    sees two views of an image with feature dropout; the teacher, an exponential moving average of
    the student, sees the clean views, centred and sharpened; the loss is the from-scratch member's
    :func:`skinmap.embed.members.dino.dino_loss`. The
    member's vector is the teacher's ``embed_dim`` output (before the prototypes).

The loops are plain PyTorch on in-memory feature matrices (a Lightning trainer would cost more to start
than these heads cost to train). Every batch's rows pass through ``on_batch`` (global row ids), which
the leak test instruments.
"""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skinmap.embed.members.base import MemberConfig, OptimConfig, warmup_linear_decay
from skinmap.embed.members.dino import dino_loss  # the same objective as the from-scratch DINO member

__all__ = [
    "HEAD_KINDS", "VIEWS", "HeadConfig", "ProjectionHead", "HeadMember", "HeadEncoder", "ViewEncoder",
    "caption_positives", "multi_positive_clip_loss", "siglip_loss", "apply_view", "fit_head",
]

HEAD_KINDS: tuple[str, ...] = ("lit_clip", "lit_siglip", "dino_head")
#: Kinds that learn from (image, caption) pairs: their training data include the captions.
CAPTION_HEAD_KINDS: tuple[str, ...] = ("lit_clip", "lit_siglip")
#: Augmented views of a decoded square image (uint8 NHWC): flips and right-angle rotations.
VIEWS: tuple[str, ...] = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270", "transpose")


def _head_optim() -> OptimConfig:
    return OptimConfig(lr=1e-3, weight_decay=1e-4, warmup_fraction=0.05, grad_clip=1.0, batch_size=256, max_steps=400)


@dataclass(frozen=True)
class HeadConfig(MemberConfig):
    """A head member: its dimensions, objective constants and optimiser.

    ``hidden_dim`` 0 makes the image (and text) head linear. ``views`` (``dino_head``): the cached
    augmented views (:data:`VIEWS`), at least two. ``feature_dropout``: dropout on the student's input
    features (``dino_head``). ``out_dim``: DINO prototypes.
    """

    embed_dim: int = 128
    hidden_dim: int = 512
    views: tuple = ("identity", "hflip", "rot90")
    feature_dropout: float = 0.2
    out_dim: int = 1024
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    center_momentum: float = 0.9
    teacher_momentum: float = 0.99
    max_view_rows: int = 0
    pca_init: bool = False
    optim: OptimConfig = field(default_factory=_head_optim)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "views", tuple(self.views))
        bad = [v for v in self.views if v not in VIEWS]
        if bad or len(self.views) < 2:
            raise ValueError(f"views must be at least two of {VIEWS}, got {self.views}")
        if self.pca_init and self.hidden_dim:
            raise ValueError("pca_init needs a linear head (hidden_dim 0)")
        if self.embed_dim < 2 or self.hidden_dim < 0 or not 0 <= self.feature_dropout < 1 or self.max_view_rows < 0:
            raise ValueError("embed_dim >= 2, hidden_dim >= 0, max_view_rows >= 0 and 0 <= feature_dropout < 1 are required")


class ProjectionHead(nn.Module):
    """``x -> W2 gelu(W1 x)`` (or ``W x`` when ``hidden_dim`` is 0); unnormalised."""

    def __init__(self, in_dim: int, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.net = (nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, embed_dim))
                    if hidden_dim else nn.Linear(in_dim, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- losses ---------------------------------------------------------------------------------------

def caption_positives(caption_ids: torch.Tensor) -> torch.Tensor:
    """``S_ij = [c_i = c_j]`` as float (B, B): pairs sharing a caption are positives."""
    ids = torch.as_tensor(caption_ids)
    return (ids[:, None] == ids[None, :]).float()


def multi_positive_clip_loss(u: torch.Tensor, v: torch.Tensor, logit_scale, positives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE with soft targets ``S_i / sum(S_i)`` (module doc); ``S = I`` by default.

    Parameters
    ----------
    u, v : Tensor of shape (B, d)
        Image and text embeddings (normalised here).
    logit_scale : float or Tensor
        The multiplier ``s`` of the cosine similarities.
    positives : Tensor of shape (B, B), optional
        ``S`` (:func:`caption_positives`); must hold the diagonal.
    """
    u, v = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    logits = logit_scale * u @ v.T
    s = torch.eye(u.shape[0], device=u.device) if positives is None else positives.to(logits.dtype)
    image_to_text = -(s / s.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_image = -(s.T / s.T.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return 0.5 * (image_to_text + text_to_image)


def siglip_loss(u: torch.Tensor, v: torch.Tensor, logit_scale, logit_bias, positives: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise sigmoid loss ``-(1/B) sum_ij log sigma(z_ij (s u_i.v_j + b))`` with ``z = 2S - 1`` (module doc)."""
    u, v = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    s = torch.eye(u.shape[0], device=u.device) if positives is None else positives.to(u.dtype)
    z = 2.0 * s - 1.0
    return -F.logsigmoid(z * (logit_scale * u @ v.T + logit_bias)).sum() / u.shape[0]


# --- the member module ----------------------------------------------------------------------------

class HeadMember(nn.Module):
    """The trained part of a head member: the image head (and the text head or DINO prototypes)."""

    def __init__(self, kind: str, config: HeadConfig, in_dim: int, text_dim: int | None = None):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"unknown head kind {kind!r}")
        self.kind, self.config, self.in_dim, self.text_dim = kind, config, int(in_dim), text_dim
        self.image = ProjectionHead(in_dim, config.embed_dim, config.hidden_dim)
        if kind in CAPTION_HEAD_KINDS:
            if not text_dim:
                raise ValueError(f"{kind} needs caption vectors (text_dim)")
            self.text = ProjectionHead(int(text_dim), config.embed_dim, config.hidden_dim)
            siglip = kind == "lit_siglip"
            self.logit_scale = nn.Parameter(torch.tensor(float(np.log(10.0) if siglip else np.log(1 / 0.07))))
            self.logit_bias = nn.Parameter(torch.tensor(-10.0)) if siglip else None
        else:
            self.prototypes = nn.utils.parametrizations.weight_norm(nn.Linear(config.embed_dim, config.out_dim, bias=False))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The member's vector of l2-normalised base features ``x`` (B, in_dim) -> (B, embed_dim)."""
        return F.normalize(self.image(x), dim=-1)

    @torch.no_grad()
    def embed_texts(self, text: np.ndarray) -> np.ndarray:
        """The text head's l2-normalised vectors ``v = normalize(h(t))`` of caption vectors ``text``
        (n, text_dim) -> (n, embed_dim): the locked-image members' side of zero-shot prompts."""
        if self.kind not in CAPTION_HEAD_KINDS:
            raise ValueError(f"a {self.kind} member has no text head")
        self.eval()
        return F.normalize(self.text(torch.from_numpy(np.asarray(text, np.float32))), dim=-1).numpy()

    @torch.no_grad()
    def transform(self, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """:meth:`embed` of a float array, as float32 numpy (NaN rows stay NaN)."""
        self.eval()
        x = np.asarray(x, np.float32)
        out = np.full((len(x), self.config.embed_dim), np.nan, np.float32)
        ok = np.isfinite(x).all(axis=1)
        rows = np.flatnonzero(ok)
        for i in range(0, rows.size, batch_size):
            r = rows[i:i + batch_size]
            out[r] = self.embed(torch.from_numpy(x[r])).numpy()
        return out

    def payload(self) -> dict:
        """Everything :meth:`from_payload` needs (the checkpoint content)."""
        return {"kind": self.kind, "config": asdict(self.config), "in_dim": self.in_dim, "text_dim": self.text_dim,
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_payload(cls, saved: dict) -> "HeadMember":
        module = cls(saved["kind"], HeadConfig(**saved["config"]), saved["in_dim"], saved["text_dim"])
        module.load_state_dict(saved["state_dict"])
        return module.eval()

    def weights_digest(self) -> str:
        buffer = io.BytesIO()
        for k, v in sorted(self.state_dict().items()):
            buffer.write(k.encode())
            buffer.write(v.detach().cpu().contiguous().numpy().tobytes())
        return hashlib.sha256(buffer.getvalue()).hexdigest()[:16]


def _pca_start(linear: nn.Linear, x: np.ndarray, embed_dim: int, seed: int) -> None:
    """Set ``linear`` to ``W (x - mu)`` with ``W`` the top principal axes of ``x``."""
    from skinmap.embed.fusion import pca_init

    mu, weight = pca_init(x, embed_dim, seed)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(-(weight @ mu)))


def _batches(n: int, batch_size: int, steps: int, seed: int):
    """Row positions of every step: seeded epoch permutations cut into batches of ``min(batch, n)``."""
    rng = np.random.default_rng(seed)
    b = min(batch_size, n)
    order, at = rng.permutation(n), 0
    for _ in range(steps):
        if at + b > n:
            order, at = rng.permutation(n), 0
        yield order[at:at + b]
        at += b


def fit_head(kind: str, config: HeadConfig, features: np.ndarray, *, text: np.ndarray | None = None,
             caption_ids: np.ndarray | None = None, views: np.ndarray | None = None,
             row_ids: np.ndarray | None = None, on_batch=None, threads: int = 1) -> tuple[HeadMember, list[dict]]:
    """Train a head member on in-memory features of its training rows.

    Parameters
    ----------
    kind : {"lit_clip", "lit_siglip", "dino_head"}
    config : HeadConfig
    features : ndarray of shape (n, d)
        l2-normalised frozen image features of the training rows (the identity view).
    text : ndarray of shape (n, d_text), optional
        Caption vectors (``lit_*``; required, finite).
    caption_ids : ndarray of shape (n,), optional
        Integer id of each row's caption (equal ids = same caption: positives). Default: all distinct.
    views : ndarray of shape (V, n, d), optional
        Features of the augmented views (``dino_head``; V >= 2, finite).
    row_ids : ndarray of shape (n,), optional
        Global row ids handed to ``on_batch`` (default ``0..n-1``).
    on_batch : callable, optional
        Called with the ``row_ids`` of every training batch (instrumentation).
    threads : int
        torch intra-op threads while training (restored afterwards). The heads' matrices are small:
        on a shared, oversubscribed machine one thread was 3-10x faster per step than two
        (``tests/benchmarks/bench_embed.py``).

    Returns
    -------
    (HeadMember, history)
        The trained module (eval mode) and one ``{"step", "train/loss", "lr"}`` dict per step.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        return _fit_head(kind, config, features, text=text, caption_ids=caption_ids, views=views, row_ids=row_ids,
                         on_batch=on_batch)
    finally:
        torch.set_num_threads(previous)


def _fit_head(kind, config, features, *, text, caption_ids, views, row_ids, on_batch):
    features = np.asarray(features, np.float32)
    n = len(features)
    if n < 2 or not np.isfinite(features).all():
        raise ValueError(f"{kind}: need at least two finite feature rows, got {n}")
    row_ids = np.arange(n) if row_ids is None else np.asarray(row_ids)
    cfg = config.optim
    torch.manual_seed(cfg.seed)
    module = HeadMember(kind, config, features.shape[1], None if text is None else np.asarray(text).shape[1])
    x = torch.from_numpy(features)
    if config.pca_init:
        _pca_start(module.image.net, features, config.embed_dim, cfg.seed)
        if kind in CAPTION_HEAD_KINDS and text is not None and np.isfinite(text).all():
            _pca_start(module.text.net, np.asarray(text, np.float32), config.embed_dim, cfg.seed + 1)
    if kind in CAPTION_HEAD_KINDS:
        if text is None or len(text) != n or not np.isfinite(text).all():
            raise ValueError(f"{kind}: one finite caption vector per row is required")
        t = torch.from_numpy(np.asarray(text, np.float32))
        ids = torch.as_tensor(np.arange(n) if caption_ids is None else np.asarray(caption_ids))
    else:
        if views is None or np.asarray(views).shape[:2] != (len(views), n) or len(views) < 2:
            raise ValueError(f"{kind}: views of shape (V >= 2, {n}, d) are required")
        vx = torch.from_numpy(np.asarray(views, np.float32))
        if not torch.isfinite(vx).all():
            raise ValueError(f"{kind}: non-finite view features")
        teacher = copy.deepcopy(module)
        for p in teacher.parameters():
            p.requires_grad_(False)
        center = torch.zeros(config.out_dim)
        gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    other = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_linear_decay(s, cfg.max_steps, cfg.warmup_fraction))
    history = []
    module.train()
    for step, rows in enumerate(_batches(n, cfg.batch_size, cfg.max_steps, cfg.seed)):
        if on_batch is not None:
            on_batch(row_ids[rows])
        r = torch.from_numpy(rows)
        if kind in CAPTION_HEAD_KINDS:
            u, v = module.image(x[r]), module.text(t[r])
            pos = caption_positives(ids[r])
            scale = module.logit_scale.exp().clamp(max=100)
            loss = (multi_positive_clip_loss(u, v, scale, pos) if kind == "lit_clip"
                    else siglip_loss(u, v, scale, module.logit_bias, pos))
        else:
            pick = torch.rand(len(rows), len(vx), generator=gen).argsort(dim=1)[:, :2]  # two distinct views per row
            pair = [vx[pick[:, a], r] for a in (0, 1)]
            drop = config.feature_dropout
            student = [module.prototypes(module.embed(F.dropout(p, drop, training=True) if drop else p)) for p in pair]
            with torch.no_grad():
                target = [teacher.prototypes(teacher.embed(p)) for p in pair]
            loss = dino_loss(student, target, center, config.student_temp, config.teacher_temp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        if kind == "dino_head":
            with torch.no_grad():
                m = config.teacher_momentum
                for ps, pt in zip(module.parameters(), teacher.parameters()):
                    pt.mul_(m).add_(ps.detach(), alpha=1 - m)
                batch_center = torch.cat(target).mean(0)
                center.mul_(config.center_momentum).add_(batch_center, alpha=1 - config.center_momentum)
        history.append({"step": step, "train/loss": float(loss.item()), "lr": float(lr)})
    out = teacher if kind == "dino_head" else module
    return out.eval(), history


# --- encoders for new images (the atlas app, embed_paths) -----------------------------------------

def apply_view(batch: np.ndarray, view: str) -> np.ndarray:
    """One of :data:`VIEWS` applied to uint8 (B, H, W, 3) square images (a contiguous copy)."""
    ops = {"identity": lambda b: b, "hflip": lambda b: b[:, :, ::-1], "vflip": lambda b: b[:, ::-1],
           "rot90": lambda b: np.rot90(b, 1, axes=(1, 2)), "rot180": lambda b: np.rot90(b, 2, axes=(1, 2)),
           "rot270": lambda b: np.rot90(b, 3, axes=(1, 2)), "transpose": lambda b: b.transpose(0, 2, 1, 3)}
    if view not in ops:
        raise ValueError(f"unknown view {view!r}; one of {VIEWS}")
    return np.ascontiguousarray(ops[view](np.asarray(batch)))


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class ViewEncoder:
    """A frozen encoder applied to one augmented view of each image (its own cache identity)."""

    def __init__(self, base, view: str):
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; one of {VIEWS}")
        self.base, self.view = base, view
        self.name = base.name if view == "identity" else f"{base.name}_{view}"
        self.image_size, self.dim = base.image_size, base.dim

    @property
    def identity(self) -> str:
        return self.base.identity if self.view == "identity" else f"{self.base.identity}|view={self.view}"

    def encode_uint8(self, batch: np.ndarray) -> np.ndarray:
        return self.base.encode_uint8(apply_view(batch, self.view))


class HeadEncoder:
    """A head member as an image encoder: frozen base features, l2-normalised, through the head.

    The same function the chapter applies to the cached base vectors (:meth:`HeadMember.transform`),
    so a new image lands where a catalog image with the same pixels did.
    """

    def __init__(self, name: str, module: HeadMember, base):
        self.name, self.module, self.base = name, module.eval(), base
        self.image_size, self.dim = base.image_size, module.config.embed_dim

    @property
    def identity(self) -> str:
        return f"{self.name}-{self.module.kind}-{self.module.weights_digest()}|{self.base.identity}"

    def encode_uint8(self, batch: np.ndarray) -> np.ndarray:
        return self.module.transform(_l2(self.base.encode_uint8(batch)))
