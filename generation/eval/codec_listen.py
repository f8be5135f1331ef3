"""Listen to the codec: held-out clips as spectrograms and audio, original beside its codec
round trip and Opus at 6 kbps, so a reader can judge by eye and by ear.

    python -m generation.eval codec-listen --checkpoint CKPT --manifest M --out docs/codec-listen

Writes one PNG per clip (three log-mel spectrograms, same colour scale) and the three WAVs
under OUT/audio/ (not committed: they are big; regenerate them with this command).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from generation.codec.data import load_audio, read_manifest
from generation.codec.losses import log_mel as codec_log_mel
from generation.codec.model import Codec
from generation.eval.codec import evenly_spread, opus_roundtrip


def log_mel(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The log-mel spectrogram the codec's own mel distance uses, [n_mels, frames]."""
    with torch.no_grad():
        spec = codec_log_mel(torch.from_numpy(wave).float()[None], sample_rate, 1024, 80)[0]
    return spec.numpy()


def draw(rows: list[tuple[str, np.ndarray]], sample_rate: int, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [(name, log_mel(wave, sample_rate)) for name, wave in rows]
    low = min(s.min() for _, s in specs)
    high = max(s.max() for _, s in specs)
    seconds = len(rows[0][1]) / sample_rate
    figure, axes = plt.subplots(len(specs), 1, figsize=(9, 2.1 * len(specs)), sharex=True)
    axes = np.atleast_1d(axes)
    for axis, (name, spec) in zip(axes, specs, strict=True):
        axis.imshow(
            spec,
            origin="lower",
            aspect="auto",
            vmin=low,
            vmax=high,
            cmap="magma",
            extent=(0, seconds, 0, spec.shape[0]),
        )
        axis.set_ylabel(f"{name}\nmel bin")
    axes[0].set_title(title, fontsize=9)
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/codec-listen"))
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--split", default="test")


def main(args: argparse.Namespace) -> None:
    codec = Codec.load(args.checkpoint).eval()
    rate = codec.config.sample_rate
    clips = evenly_spread(read_manifest(args.manifest, args.split), args.clips)
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    for clip in tqdm(clips, desc="clips"):
        original = load_audio(clip.path, rate, frames=int(args.seconds * rate))
        with torch.no_grad():
            ours = codec.decode(codec.encode(torch.from_numpy(original)))[: len(original)].numpy()
        with tempfile.TemporaryDirectory() as work:
            opus, _ = opus_roundtrip(original, rate, 6000, cbr=False, workdir=Path(work))
        opus = opus[: len(original)]
        versions = [
            ("original", original),
            (f"codec {codec.config.bitrate_bps / 1000:.1f} kbps", ours),
            ("Opus 6 kbps", opus),
        ]
        name = clip.id[:60]
        draw(versions, rate, f"{clip.id}", args.out / f"{name}.png")
        for label, wave in zip(("original", "codec", "opus6"), (original, ours, opus), strict=True):
            sf.write(args.out / "audio" / f"{name}-{label}.wav", wave, rate)
    print(f"wrote {len(clips)} spectrograms to {args.out}")
