"""The shipped checkpoint format, shared by the codec and the LM: one ``torch.save`` of a plain
dict (loadable with ``weights_only=True``) holding a format tag, the config as JSON, fp16
weights and, optionally, JSON metadata."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


def save_fp16(
    module: nn.Module, path: str | Path, fmt: str, config: dict, extra: dict | None = None
) -> None:
    weights = {k: v.half() if v.is_floating_point() else v for k, v in module.state_dict().items()}
    blob = {"format": fmt, "config": json.dumps(config), "state_dict": weights}
    if extra is not None:
        blob["extra"] = json.dumps(extra)
    torch.save(blob, path)


def load_fp16(path: str | Path, fmt: str, map_location: str | torch.device = "cpu"):
    """(config dict, float32 state dict, extra dict) of a file written by save_fp16."""
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if blob.get("format") != fmt:
        raise ValueError(f"{path} is not a {fmt} file")
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    return json.loads(blob["config"]), state, json.loads(blob.get("extra", "{}"))
