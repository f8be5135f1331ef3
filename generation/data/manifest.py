"""The corpus on disk: the manifest of clips, reading clips back, and pre-tokenised shards.

Layout of a corpus directory::

    <out>/manifest.jsonl                 one JSON object per clip (schema: ClipRecord)
    <out>/corpus.json                    totals: hours per style, clips per split, seed, version
    <out>/clips/<style>/<clip id>.flac   mono 24 kHz audio, paths relative to <out>
    <out>/tokens/<codec_version>/<split>-NNNN.npz   codec tokens, written by write_token_shards

The manifest keys are a contract with the codec and LM code: :data:`MANIFEST_KEYS`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from generation.data.attributes import ClipAttributes

MANIFEST_NAME = "manifest.jsonl"
SUMMARY_NAME = "corpus.json"
TOKENS_DIR = "tokens"

MANIFEST_KEYS: tuple[str, ...] = (
    "id",
    "path",
    "split",
    "source",
    "piece_id",
    "style",
    "instruments",
    "bpm",
    "key",
    "mode",
    "energy",
    "section",
    "caption",
    "duration_s",
    "sample_rate",
)
"""Keys every manifest row has (rows also carry ``start_s`` and ``variant``)."""


@dataclass(frozen=True)
class ClipRecord:
    """One manifest row."""

    id: str
    path: str
    split: str
    source: str
    piece_id: str
    style: str
    instruments: list[str]
    bpm: float
    key: str
    mode: str
    energy: float
    section: str
    caption: str
    duration_s: float
    sample_rate: int
    start_s: float
    variant: int

    @classmethod
    def from_attributes(
        cls,
        attributes: ClipAttributes,
        *,
        clip_id: str,
        path: str,
        split: str,
        caption: str,
        duration_s: float,
        sample_rate: int,
        start_s: float,
        variant: int,
    ) -> ClipRecord:
        return cls(
            id=clip_id,
            path=path,
            split=split,
            source=attributes.source,
            piece_id=attributes.piece_id,
            style=attributes.style,
            instruments=list(attributes.instruments),
            bpm=attributes.bpm,
            key=attributes.key,
            mode=attributes.mode,
            energy=attributes.energy,
            section=attributes.section,
            caption=caption,
            duration_s=duration_s,
            sample_rate=sample_rate,
            start_s=start_s,
            variant=variant,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_manifest(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """Write rows as JSON lines, atomically (a reader never sees half a manifest)."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    partial.replace(path)


def read_manifest(path: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """All rows of a manifest, or those of one split, in file order."""
    rows = []
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                if split is None or row["split"] == split:
                    rows.append(row)
    return rows


def iter_clips(
    manifest_path: str | Path, split: str | None = None
) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """Yield ``(row, audio)`` for every clip of ``split`` (all splits when None).

    ``row`` is the manifest row as a dict; ``audio`` is mono float32 in [-1, 1] at
    ``row["sample_rate"]``. Audio is read lazily, one clip at a time.
    """
    root = Path(manifest_path).parent
    for row in read_manifest(manifest_path, split):
        audio, rate = soundfile.read(root / row["path"], dtype="float32", always_2d=False)
        if rate != row["sample_rate"]:
            raise ValueError(f"{row['path']}: {rate} Hz, manifest says {row['sample_rate']} Hz")
        yield row, audio


def token_dir(corpus_dir: str | Path, codec_version: str) -> Path:
    """Where the token shards of one codec version live: ``<corpus>/tokens/<codec_version>``."""
    return Path(corpus_dir) / TOKENS_DIR / codec_version


EncodeFn = Callable[[np.ndarray, int], np.ndarray]
"""(mono float32 audio, sample rate) -> integer codes shaped [codebooks, frames]."""


def write_token_shards(
    manifest_path: str | Path,
    encode_fn: EncodeFn,
    out_dir: str | Path,
    *,
    clips_per_shard: int = 1024,
    splits: Iterable[str] = ("train", "valid", "test"),
) -> list[Path]:
    """Encode every clip and store the codes as ``<out_dir>/<split>-NNNN.npz`` shards.

    Each shard holds the clips of one split in manifest order:

    * ``ids``: clip ids, ``<U`` strings, shape [N];
    * ``codes``: every clip's codes concatenated along frames, shape [K, sum of frames];
    * ``offsets``: int64 [N + 1], clip i is ``codes[:, offsets[i]:offsets[i + 1]]``.

    ``<out_dir>/index.json`` lists the shards per split with their clip counts. Use
    :func:`token_dir` for ``out_dir`` to follow the corpus layout. Returns the shard paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        index[split] = []
        batch: list[tuple[str, np.ndarray]] = []

        def flush(batch: list[tuple[str, np.ndarray]], split: str = split) -> None:
            if not batch:
                return
            path = out / f"{split}-{len(index[split]):04d}.npz"
            lengths = [codes.shape[-1] for _, codes in batch]
            np.savez(
                path,
                ids=np.array([clip_id for clip_id, _ in batch]),
                codes=np.concatenate([codes for _, codes in batch], axis=-1),
                offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            )
            index[split].append({"file": path.name, "clips": len(batch)})
            written.append(path)

        for row, audio in iter_clips(manifest_path, split):
            codes = np.asarray(encode_fn(audio, row["sample_rate"]))
            if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
                raise ValueError(
                    f"encode_fn must return integer codes [K, F], got {codes.dtype} {codes.shape}"
                )
            batch.append((row["id"], codes))
            if len(batch) == clips_per_shard:
                flush(batch)
                batch = []
        flush(batch)
    (out / "index.json").write_text(json.dumps({"shards": index}, indent=2) + "\n")
    return written


def iter_token_shards(out_dir: str | Path, split: str) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(clip id, codes [K, F])`` from the shards of one split, in order."""
    index = json.loads((Path(out_dir) / "index.json").read_text())
    for shard in index["shards"].get(split, []):
        with np.load(Path(out_dir) / shard["file"]) as data:
            codes, offsets = data["codes"], data["offsets"]
            for i, clip_id in enumerate(data["ids"]):
                yield str(clip_id), codes[:, offsets[i] : offsets[i + 1]]


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals over manifest rows: clips, hours overall and per style, clips and pieces per split."""
    seconds_per_style: dict[str, float] = defaultdict(float)
    clips_per_split: Counter[str] = Counter()
    pieces_per_split: dict[str, set[str]] = defaultdict(set)
    clips = 0
    for row in rows:
        clips += 1
        seconds_per_style[row["style"]] += row["duration_s"]
        clips_per_split[row["split"]] += 1
        pieces_per_split[row["split"]].add(row["piece_id"])
    return {
        "clips": clips,
        "hours": round(sum(seconds_per_style.values()) / 3600, 4),
        "hours_per_style": {
            style: round(seconds / 3600, 4) for style, seconds in sorted(seconds_per_style.items())
        },
        "clips_per_split": dict(sorted(clips_per_split.items())),
        "pieces_per_split": {s: len(p) for s, p in sorted(pieces_per_split.items())},
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a short text table, for ``python -m generation.data stats``."""
    lines = [f"{summary['clips']} clips, {summary['hours']:.2f} hours"]
    for style, hours in summary["hours_per_style"].items():
        lines.append(f"  {style:<26} {hours:8.2f} h")
    splits = ", ".join(
        f"{split} {count} clips / {summary['pieces_per_split'].get(split, 0)} pieces"
        for split, count in summary["clips_per_split"].items()
    )
    lines.append(f"splits: {splits}")
    return "\n".join(lines)
