"""Train the attribute probe (style, instruments; tempo and key by analysis) on the corpus.

    python -m generation.train probe --manifest var/corpus/full/manifest.jsonl \\
        --out var/checkpoints/probe.pt [--crop-seconds 2.0 --crops-per-clip 3 --limit N]

Features of every train clip (whole, plus --crops-per-clip random crops of --crop-seconds) and of
--valid-limit valid clips are extracted with a progress bar; the MLP is fitted on the train rows,
keeping the epoch with the best validation loss; the probe is saved, then scored on the test
split (whole clips and crops separately, see generation.probe.corpus), and the figures are stored
in the checkpoint's ``info["heldout"]`` and printed. The last line printed is one JSON object.

--cache PATH keeps the extracted train and valid features in an .npz, reused when the manifest
and crop settings match, so the classifier can be refitted in seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generation.probe.corpus import Rows, evaluate_split, extract_rows, instrument_vocabulary
from generation.probe.features import FEATURE_NAMES, FEATURES_VERSION
from generation.probe.model import AttributeProbe, FitConfig


def _cache_key(args: argparse.Namespace, split: str, limit: int | None) -> dict[str, Any]:
    return {
        "manifest": str(Path(args.manifest).resolve()),
        "split": split,
        "limit": limit,
        "crop_seconds": args.crop_seconds,
        "crops_per_clip": args.crops_per_clip,
        "seed": args.seed,
        "features": list(FEATURE_NAMES),
        "features_version": FEATURES_VERSION,
    }


def _load_or_extract(args: argparse.Namespace, split: str, limit: int | None, seed: int) -> Rows:
    """Features of one split, from --cache when it holds the same extraction."""
    key = _cache_key(args, split, limit)
    path = Path(f"{args.cache}.{split}.npz") if args.cache else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as data:
            if json.loads(str(data["key"])) == key:
                print(f"{split}: features from {path}")
                return Rows(
                    features=list(data["features"]),
                    styles=[str(s) for s in data["styles"]],
                    instruments=[json.loads(str(s)) for s in data["instruments"]],
                    kinds=[str(s) for s in data["kinds"]],
                    clip_ids=[str(s) for s in data["clip_ids"]],
                )
    rows = extract_rows(
        args.manifest,
        split,
        crop_seconds=args.crop_seconds,
        crops_per_clip=args.crops_per_clip,
        limit=limit,
        seed=seed,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            key=json.dumps(key),
            features=rows.matrix(),
            styles=np.array(rows.styles),
            instruments=np.array([json.dumps(i) for i in rows.instruments]),
            kinds=np.array(rows.kinds),
            clip_ids=np.array(rows.clip_ids),
        )
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FitConfig()
    parser.add_argument("--manifest", type=Path, required=True, help="corpus manifest.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="probe checkpoint (.pt)")
    parser.add_argument("--crop-seconds", type=float, default=2.0, help="length of crops")
    parser.add_argument("--crops-per-clip", type=int, default=3, help="crops per clip and split")
    parser.add_argument("--limit", type=int, default=None, help="train clips (spread evenly)")
    parser.add_argument("--valid-limit", type=int, default=300, help="valid clips, 0 for none")
    parser.add_argument("--test-limit", type=int, default=None, help="test clips to score")
    parser.add_argument(
        "--min-instrument-clips",
        type=int,
        default=20,
        help="instruments on fewer train clips are left out of the vocabulary",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--instrument-weight", type=float, default=defaults.instrument_weight)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache path prefix")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    started = time.time()
    train = _load_or_extract(args, "train", args.limit, args.seed)
    valid = _load_or_extract(args, "valid", args.valid_limit, args.seed + 1)
    if not len(train):
        raise SystemExit(f"no train clips in {args.manifest}")

    styles = sorted(set(train.styles))
    whole = [
        names for names, kind in zip(train.instruments, train.kinds, strict=True) if kind == "full"
    ]
    instruments = instrument_vocabulary(whole, args.min_instrument_clips)
    print(
        f"{len(train)} train rows ({len(whole)} clips), {len(valid)} valid rows; "
        f"{len(styles)} styles, {len(instruments)} instruments"
    )
    probe = AttributeProbe(styles, instruments)
    valid_data = None
    if len(valid):
        valid_data = (valid.matrix(), valid.styles, valid.instruments)
    fit = probe.fit(
        train.matrix(),
        train.styles,
        train.instruments,
        valid=valid_data,
        config=FitConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            instrument_weight=args.instrument_weight,
            seed=args.seed,
        ),
    )
    print(
        f"fitted: train loss {fit['train_loss']:.3f}, valid loss {fit['valid_loss']:.3f} "
        f"at epoch {fit['chosen_epoch']}"
    )
    probe.save(args.out)

    heldout = evaluate_split(
        probe,
        args.manifest,
        "test",
        crop_seconds=args.crop_seconds,
        crops_per_clip=args.crops_per_clip,
        limit=args.test_limit,
    )
    probe.info["heldout"] = heldout
    probe.save(args.out)
    summary = {
        "checkpoint": str(args.out),
        "train_clips": len(whole),
        "train_rows": len(train),
        "styles": len(styles),
        "instruments": len(instruments),
        "fit": fit,
        "test": heldout,
        "elapsed_s": round(time.time() - started, 1),
    }
    print(json.dumps(summary))
