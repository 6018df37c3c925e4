"""Checkpoints: the same payload gives the same bytes wherever it is saved, and loads back."""

from __future__ import annotations

import hashlib

import torch

from skinmap.embed.checkpoint import load_checkpoint, save_checkpoint


def test_same_payload_same_bytes_and_round_trip(tmp_path):
    payload = {"kind": "mae", "config": {"optim": {"lr": 1e-3}}, "state_dict": {"w": torch.arange(6.0).view(2, 3)}}
    a = save_checkpoint(payload, tmp_path / "a" / "one.pt")
    b = save_checkpoint(payload, tmp_path / "b" / "other-name.pt")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    back = load_checkpoint(b)
    assert back["kind"] == "mae" and back["config"] == {"optim": {"lr": 1e-3}}
    assert torch.equal(back["state_dict"]["w"], torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["one.pt"]  # no temporary file left
