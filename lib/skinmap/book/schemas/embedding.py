"""Parameters of chapter 03 (the embedding space, paper section 2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from skinmap.analysis.evaluation_split import EvaluationSplitConfig, Protocol
from skinmap.analysis.probes import ProbeConfig
from skinmap.analysis.resampling import CI_BOUNDS
from skinmap.book.schemas import knob_field
from skinmap.book.schemas._copy_verification import CopyVerificationParams
from skinmap.embed.members.registry import MemberSpec

DEPENDS_ON: tuple[str, ...] = ("data",)
RENAMED_KEYS: dict[str, str] = {"knn_k": "n_neighbors", "probe_test_fraction": "test_fraction"}


_TINY_OPTIM = {"lr": 1e-3, "batch_size": 32, "max_steps": 6}
DEMO_MEMBERS = [
    {"name": "clip_third0", "kind": "clip", "partition": "third0", "config": {"optim": _TINY_OPTIM}},
    {"name": "siglip_third1", "kind": "siglip", "partition": "third1", "config": {"optim": _TINY_OPTIM}},
    {"name": "dino", "kind": "dino", "partition": "all", "config": {"optim": _TINY_OPTIM}},
    {"name": "ibot", "kind": "ibot", "partition": "all", "config": {"optim": _TINY_OPTIM}},
    {"name": "mae", "kind": "mae", "partition": "all", "config": {"optim": _TINY_OPTIM}},
]


class Params(CopyVerificationParams):
    efficientnet_image_size: int = Field(96, ge=32, le=512, description="input size of the frozen EfficientNet-Lite0 member (224 in the paper's convention)")
    members: list[MemberSpec] = Field(default_factory=lambda: [MemberSpec(**m) for m in DEMO_MEMBERS],
                                      description="trainable members (CLIP/SigLIP/DINO/iBOT/MAE)")
    use_captions: bool = Field(True, description="contrast fused images with MiniLM caption vectors (else member-dropout views)")
    fusion_out_dim: int = Field(128, ge=2, le=4096, description="fused space dimension (paper: 1024)")
    fusion_epochs: int = Field(30, ge=0, description="projector training epochs (paper: 20)")
    fusion_lr: float = Field(5e-4, gt=0, description="projector learning rate (paper: 5e-4)")
    fusion_batch_size: int = Field(256, ge=2, description="projector batch (paper: 512)")
    structure_lambda: float = Field(10.0, ge=0, description="STRUCTURE weight lambda (paper: 10)")
    structure_warmup_steps: int = Field(20, ge=0, description="steps of the linear lambda ramp (paper: 500)")
    structure_tau: float = Field(0.1, gt=0, description="softmax temperature of the similarity distributions")
    batch_size: int = Field(64, ge=1, description="extraction batch size")
    num_workers: int = Field(0, ge=0, description="DataLoader decode workers")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = Field("cpu", description="Lightning accelerator for training and `skinmap vectors extract`")
    devices: int = Field(1, ge=1, description="devices per node (DDP when devices x num_nodes > 1) for member training and `skinmap vectors extract`")
    num_nodes: int = Field(1, ge=1, le=4096, description="machines of a multi-node job (Lightning's num_nodes; under torchrun/SLURM it must match the launcher)")
    strategy: Literal["auto", "ddp", "ddp_find_unused_parameters_true"] = Field(
        "auto", description="Lightning strategy: auto (one process unless devices x num_nodes > 1) or ddp")
    threads: int = Field(1, ge=1, le=64, description="torch / BLAS / onnxruntime intra-op threads (1 is fastest on a shared, oversubscribed machine)")
    n_neighbors: int = Field(10, ge=1, le=1000, description="neighbours for member agreement (k-NN overlap) and the "
                                                         "cutoff k of the member retrieval table (P@k)")
    max_neighbors: int = Field(50, ge=1, le=1000, description="longest cutoff of the member retrieval curves (P@1..P@K)")
    match_on: str = Field("icd10_code", description="catalog column a retrieved image must share with the query")
    fusion_members_rule: Literal["beats_chance", "all"] = Field(
        "beats_chance", description="beats_chance: a member enters the fused space only if its retrieval P@k on the "
                                    "test rows is above chance (95% interval); all: every member (as the paper)")
    probe_attributes: list[str] = Field(["sex", "age", "body_site"],
                                        description="attributes probed on the test rows besides the diagnosis")
    # the evaluation split (skinmap.analysis.evaluation_split), decided before any training
    evaluation_protocol: Protocol = Field(
        "strict", description="strict: members, captions and projector learn from train rows only; legacy: from every "
                              "row (exists only for the leak test; the book always runs strict)")
    held_out_datasets: list[str] = knob_field(
        EvaluationSplitConfig, "held_out_datasets", default=["SynPhone-Brazil", "SynPeds-Africa"],
        description="whole datasets kept out of all training (paper: DDI, PAD-UFES-20); role 'holdout'")
    test_fraction: float = knob_field(EvaluationSplitConfig, "test_fraction")
    duplicate_threshold: float | None = knob_field(EvaluationSplitConfig, "duplicate_threshold")
    duplicate_n_neighbors: int = knob_field(EvaluationSplitConfig, "duplicate_n_neighbors")
    duplicate_mutual_top: int = knob_field(EvaluationSplitConfig, "duplicate_mutual_top")
    duplicate_verify_pixels: bool = knob_field(EvaluationSplitConfig, "duplicate_verify_pixels", default=True)
    duplicate_verify_threshold: float = knob_field(EvaluationSplitConfig, "duplicate_verify_threshold")
    # verify_*: the quality chapter's copy-verification knobs for the split's pixel check, inherited from
    # CopyVerificationParams (declared once); a contract test keeps both chapters' values equal in every profile
    max_probe_dims: int = knob_field(ProbeConfig, "max_dims", default=256)
    n_bootstrap: int = Field(1000, ge=10, le=100_000, description="bootstrap resamples (over split groups) of the probe and zero-shot intervals")
    ci: float = Field(0.95, **CI_BOUNDS, description="central level of the bootstrap intervals")
    umap_neighbors: int = Field(15, ge=2, description="UMAP n_neighbors of the 2-D map")
    umap_min_dist: float = Field(0.1, ge=0, le=1, description="UMAP min_dist")
    map_fit_size: int = Field(
        0, ge=0, description="rows (a seeded subsample) UMAP is fitted on; the others are placed at the mean "
                             "position of their nearest subsample rows; 0 = UMAP on every row")
    cache_dir: str = Field("", description="vector/ONNX/trained-model cache (empty: runs/<profile>/embedding/cache)")
    reuse_trained: bool = Field(True, description="reuse trained members and projector from the cache when data, "
                                                  "config and code are unchanged (false: always retrain)")
    seed: int = Field(0, ge=0, description="seed of partitions, training and UMAP")

    @field_validator("members")
    @classmethod
    def _unique_names(cls, members: list[MemberSpec]) -> list[MemberSpec]:
        names = [m.name for m in members]
        if len(set(names)) != len(names) or "efficientnet_lite0" in names:
            raise ValueError(f"member names must be unique and not 'efficientnet_lite0': {names}")
        return members

