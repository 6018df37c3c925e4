"""Parameters of the data chapter (``chapters/01-data.ipynb``): where the catalog comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from skinmap.book.schemas import ChapterParams, resolve_path

DEPENDS_ON: tuple[str, ...] = ()


class Params(ChapterParams):
    source: Literal["synthetic", "directory"] = Field(
        "synthetic",
        description="'synthetic': generate the seeded synthetic atlas into the run directory; "
        "'directory': read official-format datasets under data_root",
    )
    data_root: str = Field(
        "", description="dataset root (relative to the project root) read when source='directory'"
    )
    datasets: list[str] | None = Field(
        None, min_length=1,
        description="datasets to include (registry names); null = every dataset found under the root",
    )
    synthetic_seed: int = Field(0, ge=0, description="seed of the synthetic atlas (same seed, same bytes)")
    synthetic_n_images: int = Field(1500, ge=200, le=200_000, description="base images of the synthetic atlas")
    synthetic_image_size: int = Field(64, ge=32, le=512, description="side of synthetic images in pixels")
    decode_images: bool = Field(
        False, description="fully decode every image to detect corruption (slow); default reads headers and "
        "checks end markers"
    )


def external_inputs(params: Params, project_root: Path) -> list[Path]:
    """The data root read by the chapter (nothing for the synthetic atlas)."""
    if params.source == "directory" and params.data_root:
        return [resolve_path(params.data_root, project_root)]
    return []
