"""Score an attribute probe checkpoint on held-out clips of the corpus.

    python -m generation.eval probe --checkpoint var/checkpoints/probe.pt \\
        --manifest var/corpus/full/manifest.jsonl [--split test --limit N]

Whole clips and --crops-per-clip crops of --crop-seconds are scored separately against the
manifest's labels: style accuracy (overall and per style), instrument F1, tempo within 8 % and key
and mode agreement (definitions in generation.probe.corpus). The last line printed is one JSON
object with the figures; the same figures the training command prints for the test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from generation.probe.corpus import evaluate_split
from generation.probe.model import AttributeProbe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="probe .pt file")
    parser.add_argument("--manifest", type=Path, required=True, help="corpus manifest.jsonl")
    parser.add_argument("--split", default="test", help="split to score")
    parser.add_argument("--crop-seconds", type=float, default=2.0)
    parser.add_argument("--crops-per-clip", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="clips to score (spread evenly)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the crop positions")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    probe = AttributeProbe.load(args.checkpoint)
    figures = evaluate_split(
        probe,
        args.manifest,
        args.split,
        crop_seconds=args.crop_seconds,
        crops_per_clip=args.crops_per_clip,
        limit=args.limit,
        seed=args.seed,
    )
    print(json.dumps({"checkpoint": str(args.checkpoint), "split": args.split, **figures}))
