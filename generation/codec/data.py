"""Reading the training corpus for the codec: manifest rows, audio, deterministic random crops.

The corpus manifest is JSONL, one clip per line, with at least `id`, `path` (audio file relative
to the manifest's folder), `split` (train / valid / test), `duration_s` and `sample_rate`.

`CropBatches` makes batch number `step` from (seed, step) alone, so a resumed run sees exactly the
batches it would have seen, and a DataLoader's worker processes can make batches in any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from generation.data.manifest import read_manifest as read_manifest_rows


@dataclass(frozen=True)
class Clip:
    id: str
    path: Path  # absolute
    split: str
    duration_s: float
    sample_rate: int


def read_manifest(manifest: str | Path, split: str | None = None) -> list[Clip]:
    """Clips of the manifest (of one split, if given), in file order."""
    manifest = Path(manifest)
    clips = []
    for number, row in enumerate(read_manifest_rows(manifest, split), 1):
        try:
            clips.append(
                Clip(
                    id=str(row["id"]),
                    path=(manifest.parent / row["path"]).resolve(),
                    split=row["split"],
                    duration_s=float(row["duration_s"]),
                    sample_rate=int(row["sample_rate"]),
                )
            )
        except KeyError as missing:
            raise ValueError(f"{manifest}: row {number} lacks {missing}") from None
    return clips


def load_audio(path: str | Path, sample_rate: int, start: int = 0, frames: int = -1) -> np.ndarray:
    """Mono float32 samples [frames] of an audio file, from sample `start`; stereo is averaged.

    There is no resampler here: a file at another rate is an error, not a silent mismatch.
    """
    data, rate = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"{path} is {rate} Hz, the codec needs {sample_rate} Hz")
    return data.mean(axis=1)


class CropBatches(torch.utils.data.Dataset):
    """Item `step` is a batch [batch_size, crop_samples] of random crops, a pure function of
    (seed, step). Clips are drawn in proportion to their duration (so every second of audio is
    equally likely), crops shorter than the clip's end are zero-padded.
    """

    def __init__(
        self, clips: list[Clip], batch_size: int, crop_samples: int, sample_rate: int, seed: int
    ):
        if not clips:
            raise ValueError("no clips to train on")
        self.clips, self.batch_size, self.crop_samples = clips, batch_size, crop_samples
        self.sample_rate, self.seed = sample_rate, seed
        durations = np.array([c.duration_s for c in clips], dtype=np.float64)
        self.weights = durations / durations.sum()

    def __getitem__(self, step: int) -> Tensor:
        rng = np.random.default_rng([self.seed, step])
        batch = np.zeros((self.batch_size, self.crop_samples), dtype=np.float32)
        for row, index in enumerate(rng.choice(len(self.clips), self.batch_size, p=self.weights)):
            clip = self.clips[index]
            total = int(clip.duration_s * self.sample_rate)
            start = int(rng.integers(0, max(1, total - self.crop_samples)))
            audio = load_audio(clip.path, self.sample_rate, start, self.crop_samples)
            batch[row, : len(audio)] = audio
        return torch.from_numpy(batch)
