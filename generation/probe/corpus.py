"""The probe and the corpus: features of manifest clips (with crops) and held-out scoring.

Training rows come from every clip of a split twice over: the whole 10 s clip, and
``crops_per_clip`` random crops of ``crop_seconds`` (2 s by default), so the probe is trained on
the two lengths it is used on (whole generated clips, and the 2 s chunks in which a steering flip
is measured). A crop keeps its clip's labels; its instrument list can name an instrument that
happens to rest during those 2 s, which makes crop instrument scores a little pessimistic.

:func:`evaluate_split` scores a trained probe on held-out clips, separately for whole clips and
for crops, with the manifest's labels as truth:

* ``style_accuracy`` (top-1) and, per style, the same accuracy;
* ``instrument_f1_micro`` over all (clip, instrument) pairs (instruments outside the probe's
  vocabulary count as misses) and ``instrument_f1_macro``, the mean F1 over the vocabulary
  instruments that occur in the split;
* ``tempo_within_8pct``: |estimate - bpm| <= 8 % of bpm, with ``estimate_tempo`` over 60-180
  BPM; ``tempo_octave_within_8pct`` also accepts half and double the tempo;
* ``key_accuracy`` (tonic and mode both right) and ``mode_accuracy``.

Clip selection (``limit``) takes rows spread evenly over the manifest, so every style is kept.
Crop positions come from a seeded generator: the same arguments give the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from tqdm import tqdm

from generation.data.manifest import read_manifest
from generation.data.theory import key_pitch_class
from generation.probe.features import N_FEATURES, extract
from generation.probe.model import AttributeProbe

FULL, CROP = "full", "crop"


@dataclass
class Rows:
    """Feature rows with their labels; ``kind`` says whether a row is a whole clip or a crop."""

    features: list[np.ndarray] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    instruments: list[list[str]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    clip_ids: list[str] = field(default_factory=list)

    def add(self, features: np.ndarray, row: dict[str, Any], kind: str) -> None:
        self.features.append(features)
        self.styles.append(row["style"])
        self.instruments.append(list(row["instruments"]))
        self.kinds.append(kind)
        self.clip_ids.append(row["id"])

    def matrix(self) -> np.ndarray:
        if not self.features:
            return np.zeros((0, N_FEATURES), dtype=np.float32)
        return np.stack(self.features)

    def __len__(self) -> int:
        return len(self.features)


def select_rows(rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """At most ``limit`` rows, spread evenly over the list (all of them when None)."""
    if limit is None or limit >= len(rows):
        return rows
    picks = np.linspace(0, len(rows) - 1, max(0, limit)).round().astype(int)
    return [rows[i] for i in picks]


def load_clip(manifest_path: str | Path, row: dict[str, Any]) -> np.ndarray:
    """A manifest clip as mono float32 at its manifest sample rate."""
    audio, rate = soundfile.read(
        Path(manifest_path).parent / row["path"], dtype="float32", always_2d=False
    )
    if rate != row["sample_rate"]:
        raise ValueError(f"{row['path']}: {rate} Hz, manifest says {row['sample_rate']} Hz")
    return audio if audio.ndim == 1 else audio.mean(axis=1)


def crops(
    audio: np.ndarray, sample_rate: int, seconds: float, count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``count`` random crops of ``seconds`` (none if the clip is not longer than a crop)."""
    length = int(round(seconds * sample_rate))
    if count <= 0 or audio.size <= length:
        return []
    starts = rng.integers(0, audio.size - length + 1, size=count)
    return [audio[s : s + length] for s in starts]


def iter_examples(
    manifest_path: str | Path,
    split: str,
    *,
    crop_seconds: float,
    crops_per_clip: int,
    limit: int | None = None,
    seed: int = 0,
    desc: str | None = None,
) -> Iterator[tuple[dict[str, Any], str, np.ndarray]]:
    """Yield ``(row, kind, audio)``: each selected clip whole, then its crops; with a progress
    bar over clips."""
    rows = select_rows(read_manifest(manifest_path, split), limit)
    rng = np.random.default_rng(seed)
    for row in tqdm(rows, desc=desc or f"{split} clips", unit="clip", dynamic_ncols=True):
        audio = load_clip(manifest_path, row)
        yield row, FULL, audio
        for crop in crops(audio, row["sample_rate"], crop_seconds, crops_per_clip, rng):
            yield row, CROP, crop


def extract_rows(
    manifest_path: str | Path,
    split: str,
    *,
    crop_seconds: float = 2.0,
    crops_per_clip: int = 3,
    limit: int | None = None,
    seed: int = 0,
) -> Rows:
    """Feature rows of whole clips and crops of one split."""
    rows = Rows()
    for row, kind, audio in iter_examples(
        manifest_path,
        split,
        crop_seconds=crop_seconds,
        crops_per_clip=crops_per_clip,
        limit=limit,
        seed=seed,
        desc=f"features {split}",
    ):
        rows.add(extract(audio, row["sample_rate"]), row, kind)
    return rows


def instrument_vocabulary(instruments: Sequence[Sequence[str]], min_count: int) -> list[str]:
    """Instruments named on at least ``min_count`` rows, sorted by name."""
    counts: dict[str, int] = defaultdict(int)
    for names in instruments:
        for name in set(names):
            counts[name] += 1
    return sorted(name for name, count in counts.items() if count >= min_count)


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else float("nan")


def _tempo_hit(estimate: float, bpm: float, tolerance: float = 0.08) -> bool:
    return bool(np.isfinite(estimate)) and abs(estimate - bpm) <= tolerance * bpm


def score(
    probe: AttributeProbe,
    features: np.ndarray,
    styles: Sequence[str],
    instruments: Sequence[Sequence[str]],
    tempos: Sequence[float] = (),
    true_bpms: Sequence[float] = (),
    keys: Sequence[tuple[int, str]] = (),
    true_keys: Sequence[tuple[int, str]] = (),
) -> dict[str, Any]:
    """Held-out figures for one group of rows (see the module docstring)."""
    n = len(styles)
    if n == 0:
        return {"rows": 0}
    out = probe.predict_features(features)
    predicted = [probe.styles[i] for i in out.style_probs.argmax(axis=1)]
    hits = np.array([p == t for p, t in zip(predicted, styles, strict=True)])
    per_style: dict[str, list[bool]] = defaultdict(list)
    for hit, style in zip(hits, styles, strict=True):
        per_style[style].append(bool(hit))

    chosen = out.instrument_probs > 0.5
    tp = fp = fn = 0
    per_instrument = {name: [0, 0, 0] for name in probe.instruments}  # tp, fp, fn
    for row, names in enumerate(instruments):
        truth = set(names)
        guessed = {probe.instruments[i] for i in np.flatnonzero(chosen[row])}
        tp += len(truth & guessed)
        fp += len(guessed - truth)
        fn += len(truth - guessed)
        for name in probe.instruments:
            t, g = name in truth, name in guessed
            per_instrument[name][0] += t and g
            per_instrument[name][1] += g and not t
            per_instrument[name][2] += t and not g
    macro = [_f1(*c) for c in per_instrument.values() if c[0] + c[2] > 0]

    result: dict[str, Any] = {
        "rows": n,
        "style_accuracy": round(float(hits.mean()), 4),
        "instrument_f1_micro": round(_f1(tp, fp, fn), 4),
        "instrument_f1_macro": round(float(np.mean(macro)), 4) if macro else None,
    }
    if tempos:
        pairs = list(zip(tempos, true_bpms, strict=True))
        result["tempo_within_8pct"] = round(float(np.mean([_tempo_hit(e, b) for e, b in pairs])), 4)
        result["tempo_octave_within_8pct"] = round(
            float(np.mean([any(_tempo_hit(e * m, b) for m in (0.5, 1, 2)) for e, b in pairs])), 4
        )
    if keys:
        pairs = list(zip(keys, true_keys, strict=True))
        result["key_accuracy"] = round(float(np.mean([e == t for e, t in pairs])), 4)
        result["mode_accuracy"] = round(float(np.mean([e[1] == t[1] for e, t in pairs])), 4)
    result["style_accuracy_per_style"] = {
        style: round(float(np.mean(h)), 4) for style, h in sorted(per_style.items())
    }
    return result


def evaluate_split(
    probe: AttributeProbe,
    manifest_path: str | Path,
    split: str = "test",
    *,
    crop_seconds: float = 2.0,
    crops_per_clip: int = 3,
    limit: int | None = None,
    seed: int = 1,
    bpm_range: tuple[float, float] = (60.0, 180.0),
) -> dict[str, Any]:
    """Held-out figures of one split: ``{"full": {...}, "crop_2s": {...}}`` (whole clips, crops)."""
    groups: dict[str, dict[str, list]] = {FULL: defaultdict(list), CROP: defaultdict(list)}
    for row, kind, audio in iter_examples(
        manifest_path,
        split,
        crop_seconds=crop_seconds,
        crops_per_clip=crops_per_clip,
        limit=limit,
        seed=seed,
        desc=f"evaluating {split}",
    ):
        rate = row["sample_rate"]
        group = groups[kind]
        group["features"].append(extract(audio, rate))
        group["styles"].append(row["style"])
        group["instruments"].append(list(row["instruments"]))
        group["tempos"].append(probe.tempo(audio, rate, bpm_range))
        group["true_bpms"].append(float(row["bpm"]))
        estimate = probe.key(audio, rate)
        group["keys"].append((estimate.tonic, estimate.mode))
        group["true_keys"].append((key_pitch_class(row["key"]), row["mode"]))
    result: dict[str, Any] = {}
    for kind, group in groups.items():
        name = FULL if kind == FULL else f"crop_{crop_seconds:g}s"
        if not group["styles"]:
            result[name] = {"rows": 0}
            continue
        result[name] = score(
            probe,
            np.stack(group["features"]),
            group["styles"],
            group["instruments"],
            group["tempos"],
            group["true_bpms"],
            group["keys"],
            group["true_keys"],
        )
    return result
