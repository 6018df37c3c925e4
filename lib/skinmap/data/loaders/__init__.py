"""One loader module per dataset, each reading the provider's files exactly as distributed.

``OFFICIAL_LOADERS`` maps registry dataset names to loader modules (``tables/registry.csv`` column
``loader``). Each module exposes ``DATASET``, ``find(index) -> bool`` and
``load(root, issues=None, index=None, *, probe=True, decode=False) -> DataFrame``.
The generic layout (synthetic atlas, users' own datasets) is :mod:`.generic`.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from skinmap.data.registry import registry

__all__ = ["official_loader", "official_datasets"]


def official_datasets() -> list[str]:
    """Registry names of the datasets that have an official-format loader."""
    reg = registry()
    return [d for d, loader in zip(reg["dataset"], reg["loader"])
            if isinstance(loader, str) and importlib.util.find_spec(f"{__name__}.{loader}") is not None]


def official_loader(dataset: str) -> ModuleType:
    """The loader module of a registered dataset (``KeyError`` naming it when unknown)."""
    reg = registry().set_index("dataset")
    if dataset not in reg.index:
        raise KeyError(f"no official loader for {dataset!r}; registered: {list(reg.index)}")
    return importlib.import_module(f"{__name__}.{reg.loc[dataset, 'loader']}")
