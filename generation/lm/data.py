"""Training data for the token LM: the corpus pre-tokenised by the codec, plus what conditions it.

``prepare`` encodes every clip once (token shards beside the corpus, as generation.data lays them
out) and stores per clip: the MiniLM embedding of its caption and of a short style prompt, and its
spectral centroid (brightness). ``LMData.batch`` then cuts training windows:

* a random window of ``steps`` delay-pattern steps, starting anywhere in a clip, so the model
  learns to continue from the middle of a stream (a sliding window starts there too);
* the window runs on into the clip that follows in the same piece (60%), which teaches form:
  intro -> build -> drop, with the section control changing where the clip changes; or into a
  random other clip (40%) with *its* condition from that step on, which teaches steering: when
  the condition switches, move to the new music within a second or two instead of carrying on;
* condition dropout: everything unset for 12% of rows (the unconditional branch of
  classifier-free guidance), else the text and each control left unset independently.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from generation.data.manifest import (
    iter_clips,
    iter_token_shards,
    read_manifest,
    token_dir,
    write_token_shards,
)
from generation.lm.conditioning import TextEncoder, Vocab, condition_features
from generation.lm.pattern import DelayPattern
from generation.steering import Controls

META_FILE = "lm-meta.npz"
BRIGHTNESS_HZ = (300.0, 4000.0)  # log-centroid mapped to brightness 0..1 between these


def spectral_centroid(audio: np.ndarray, sample_rate: int) -> float:
    """Mean spectral centroid in Hz, weighted by frame energy (silence doesn't count)."""
    n_fft, hop = 2048, 1024
    if len(audio) < n_fft:
        audio = np.pad(audio, (0, n_fft - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=-1))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    energy = mag.sum(-1)
    centroid = (mag * freqs).sum(-1) / np.maximum(energy, 1e-9)
    return float((centroid * energy).sum() / max(energy.sum(), 1e-9))


def brightness_of(centroid_hz: float) -> float:
    lo, hi = (math.log(f) for f in BRIGHTNESS_HZ)
    return float(min(1.0, max(0.0, (math.log(max(centroid_hz, 1.0)) - lo) / (hi - lo))))


def style_prompt(row: dict) -> str:
    """The short prompt a person would type for a clip: its style, sometimes with a detail."""
    return row["style"].replace("_", " ")


def prepare(corpus: Path, codec_path: Path, codec_version: str, threads: int = 2) -> Path:
    """Tokenise the corpus with the codec and store the LM's per-clip metadata. Idempotent."""
    from generation.codec import Codec

    torch.set_num_threads(threads)
    out = token_dir(corpus, codec_version)
    manifest = corpus / "manifest.jsonl"
    rows = list(read_manifest(manifest))
    centroids: dict[str, float] = {}
    if not (out / "index.json").exists():
        codec = Codec.load(codec_path)
        bar = tqdm(total=len(rows), desc="tokenising", unit="clip")
        splits = ("train", "valid", "test")
        order = [r["id"] for s in splits for r in rows if r["split"] == s]
        position = iter(order)

        def encode(audio: np.ndarray, rate: int) -> np.ndarray:
            centroids[next(position)] = spectral_centroid(audio, rate)
            bar.update()
            return codec.encode(torch.from_numpy(audio)).numpy().astype(np.int16)

        write_token_shards(manifest, encode, out, splits=splits)
        bar.close()
    else:
        for row, audio in tqdm(iter_clips(manifest), total=len(rows), desc="brightness"):
            centroids[row["id"]] = spectral_centroid(audio, row["sample_rate"])
    encoder = TextEncoder.shared()
    captions = encoder.encode([r["caption"] for r in rows])
    styles = encoder.encode([style_prompt(r) for r in rows])
    np.savez(
        out / META_FILE,
        ids=np.array([r["id"] for r in rows]),
        caption_emb=captions.astype(np.float16),
        style_emb=styles.astype(np.float16),
        centroid=np.array([centroids[r["id"]] for r in rows], dtype=np.float32),
    )
    return out


@dataclass
class Clip:
    row: dict
    codes: np.ndarray  # [K, F] int16
    caption_emb: np.ndarray
    style_emb: np.ndarray
    brightness: float
    next_id: str | None


class LMData:
    """Clips of one split with everything needed to cut conditioned training windows."""

    def __init__(self, corpus: Path, codec_version: str, split: str, n_codebooks: int):
        tokens = token_dir(corpus, codec_version)
        meta = np.load(tokens / META_FILE)
        index = {str(i): n for n, i in enumerate(meta["ids"])}
        rows = {r["id"]: r for r in read_manifest(corpus / "manifest.jsonl", split)}
        self.clips: dict[str, Clip] = {}
        for clip_id, codes in iter_token_shards(tokens, split):
            n = index[clip_id]
            self.clips[clip_id] = Clip(
                rows[clip_id],
                codes[:n_codebooks],
                meta["caption_emb"][n].astype(np.float32),
                meta["style_emb"][n].astype(np.float32),
                brightness_of(float(meta["centroid"][n])),
                None,
            )
        for clip_id, clip in self.clips.items():
            stem, _, number = clip_id.rpartition("-")
            following = f"{stem}-{int(number) + 1:03d}" if number.isdigit() else None
            clip.next_id = following if following in self.clips else None
        self.ids = sorted(self.clips)
        self.n_codebooks = n_codebooks

    def vocab(self) -> Vocab:
        sections = sorted({c.row["section"] for c in self.clips.values()})
        instruments = sorted({i for c in self.clips.values() for i in c.row["instruments"]})
        return Vocab(tuple(sections), tuple(instruments))

    def style_table(self) -> list[dict]:
        """Per style: what its clips are like. Stored in the checkpoint for prompt expansion
        (a short prompt is filled out with the attributes of the styles nearest to it)."""
        by_style: dict[str, list[Clip]] = {}
        for clip in self.clips.values():
            by_style.setdefault(clip.row["style"], []).append(clip)
        table = []
        for style, clips in sorted(by_style.items()):
            mean = np.mean([c.caption_emb for c in clips], axis=0)
            counts: dict[str, int] = {}
            for c in clips:
                for name in c.row["instruments"]:
                    counts[name] = counts.get(name, 0) + 1
            modes = [c.row["mode"] for c in clips]
            table.append(
                {
                    "style": style,
                    "source": clips[0].row["source"],
                    "embedding": (mean / np.linalg.norm(mean)).round(5).tolist(),
                    "bpm": float(np.median([c.row["bpm"] for c in clips])),
                    "bpm_range": [
                        float(np.percentile([c.row["bpm"] for c in clips], q)) for q in (10, 90)
                    ],
                    "energy": float(np.median([c.row["energy"] for c in clips])),
                    "brightness": float(np.median([c.brightness for c in clips])),
                    "minor_share": modes.count("minor") / len(modes),
                    "instruments": [
                        n
                        for n, _ in sorted(counts.items(), key=lambda kv: -kv[1])
                        if counts[n] >= 0.3 * len(clips)
                    ][:5],
                    "sections": sorted({c.row["section"] for c in clips}),
                }
            )
        return table

    def controls_of(self, clip: Clip, rng: random.Random, vocab: Vocab, drop: float) -> Controls:
        row = clip.row

        def keep() -> bool:
            return rng.random() >= drop

        present = [i for i in row["instruments"] if i in vocab.instruments]
        absent = [i for i in vocab.instruments if i not in present]
        use_instruments = keep()
        return Controls(
            bpm=float(row["bpm"]) if keep() else None,
            energy=float(row["energy"]) if keep() else None,
            brightness=clip.brightness if keep() else None,
            key=row["key"] if keep() else None,
            mode=row["mode"] if keep() else None,
            section=row["section"] if keep() else None,
            instruments_in=tuple(i for i in present if rng.random() < 0.6)
            if use_instruments
            else (),
            instruments_out=tuple(rng.sample(absent, min(len(absent), rng.randint(0, 3))))
            if use_instruments
            else (),
        )

    def condition(self, clip: Clip, rng: random.Random, vocab: Vocab, train: bool = True):
        """(text embedding or None, controls) for a clip, with condition dropout in training."""
        if train and rng.random() < 0.12:
            return None, Controls()
        drop = 0.35 if train else 0.0
        text = None
        if not train or rng.random() >= 0.25:
            text = clip.caption_emb if (not train or rng.random() < 0.6) else clip.style_emb
        return text, self.controls_of(clip, rng, vocab, drop)

    def batch(
        self,
        size: int,
        steps: int,
        rng: random.Random,
        vocab: Vocab,
        encode: Callable[[dict[str, Tensor]], Tensor],
        pattern: DelayPattern,
        train: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """(steps tokens [B, K, steps + 1], per-step condition [B, steps, D]).

        Position t of the tokens is delay-pattern step t of the window; the model reads steps
        0..steps-1 and predicts 1..steps. ``encode`` turns condition features into vectors (the
        model's trainable encoder), so the gradient reaches it.
        """
        windows, first, second, switch = [], [], [], []
        for _ in range(size):
            clip = self.clips[rng.choice(self.ids)]
            frames = clip.codes.shape[-1]
            start = rng.randrange(0, max(1, frames - 25))
            # windows are longer than clips, so every window runs on into a second clip: the
            # next one of the piece (form) or, 40% of the time or at a piece's end, any clip
            # (steering: the condition switches where the music does)
            if clip.next_id and rng.random() < 0.6:
                follow = self.clips[clip.next_id]
            else:
                follow = self.clips[rng.choice(self.ids)]
            parts = [clip.codes[:, start:], follow.codes]
            stream = np.concatenate(parts, axis=-1)
            need = steps + 1
            while stream.shape[-1] < need:  # short clips: loop the last part
                stream = np.concatenate([stream, parts[-1]], axis=-1)
            codes = torch.from_numpy(stream[:, :need].astype(np.int64))[None]
            history = clip.codes[:, max(0, start - pattern.latency) : start]
            history = torch.from_numpy(history.astype(np.int64))[None]
            windows.append(pattern.apply(codes, history))
            first.append(self.condition(clip, rng, vocab, train))
            second.append(self.condition(follow, rng, vocab, train))
            switch.append(frames - start)
        tokens = torch.cat(windows)
        cond_a = encode(condition_features(first, vocab))
        cond_b = encode(condition_features(second, vocab))
        t = torch.arange(steps)[None, :, None]
        at = torch.tensor(switch)[:, None, None]
        # step t predicts level 0 of frame t + 1 of the window: its condition is that frame's
        cond = torch.where(t + 1 < at, cond_a[:, None], cond_b[:, None])
        return tokens, cond
