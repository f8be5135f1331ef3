"""Evaluate a codec checkpoint on held-out clips, against Opus on the same clips.

    python -m generation.eval codec --checkpoint var/checkpoints/codec/codec.pt \\
        --manifest var/corpus/default/manifest.jsonl [--clips 16] [--seconds 10]

For each clip (the first --seconds of --clips test-split clips, spread evenly over the manifest):
mel distance, multi-resolution STFT distance and SI-SDR of our reconstruction and of Opus at
6 kbps and at our bitrate, all through the same functions (generation.codec.losses). Then the
per-codebook usage (perplexity as a share of the codebook size) over all the clips' codes, and the
real-time factor of encode + decode of a --rtf-seconds clip on 1 and 2 threads (processing time /
audio duration, best of 3 after a warm-up; lower is better, 0.02 means 50x faster than real time).

Opus runs through ffmpeg's libopus: at 6 kbps with its default VBR (`-b:a 6k`), and at our bitrate
in CBR (`-vbr off`), since in VBR libopus spends ~5-6 kbps whatever lower rate is asked for. The
bitrates reported for Opus are measured: the packet payload from ffprobe (no Ogg overhead).
Without ffmpeg the Opus columns are null and the reason is printed.

The last line printed is one JSON object with the summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from generation.codec.data import load_audio, read_manifest
from generation.codec.losses import clip_metrics
from generation.codec.model import Codec
from generation.codec.quantizer import codebook_usage

METRICS = ("mel_distance", "stft_distance", "si_sdr")


def opus_roundtrip(
    wave: np.ndarray, sample_rate: int, bitrate_bps: int, cbr: bool, workdir: Path
) -> tuple[np.ndarray, float]:
    """Encode with libopus and decode back: (decoded samples, payload kbps measured)."""
    source, encoded = workdir / "in.wav", workdir / "out.opus"
    sf.write(source, wave, sample_rate, subtype="FLOAT")
    rate_args = ["-b:a", str(bitrate_bps)] + (["-vbr", "off"] if cbr else [])
    ffmpeg = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    # Fixed argument lists, no shell; the only variable parts are our own temporary file names.
    subprocess.run(  # noqa: S603
        [*ffmpeg, "-i", str(source), "-c:a", "libopus", *rate_args, str(encoded)], check=True
    )
    decoded = subprocess.run(  # noqa: S603
        [*ffmpeg, "-i", str(encoded), "-ar", str(sample_rate), "-ac", "1", "-f", "f32le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    sizes = subprocess.run(  # noqa: S603
        [_tool("ffprobe"), "-v", "error", "-select_streams", "a", "-show_entries", "packet=size"]
        + ["-of", "csv=p=0", str(encoded)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    kbps = sum(int(s.strip(",")) for s in sizes) * 8 / (len(wave) / sample_rate) / 1000
    return np.frombuffer(decoded, dtype=np.float32).copy(), kbps


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} not found (Debian package ffmpeg)")
    return path


def realtime_factor(codec: Codec, wave: Tensor, threads: int, repeats: int = 3) -> float:
    """Seconds of encode + decode per second of audio on `threads` CPU threads (best of repeats)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        codec.decode(codec.encode(wave))  # warm-up
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            codec.decode(codec.encode(wave))
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    return best / (wave.shape[-1] / codec.sample_rate)


def evenly_spread(items: list, n: int) -> list:
    """n items spread evenly over the list (all of it when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def evaluate(
    checkpoint: Path,
    manifest: Path,
    clips: int = 16,
    seconds: float = 10.0,
    split: str = "test",
    opus: bool = True,
    rtf_seconds: float = 10.0,
) -> dict:
    """Print per-clip and mean metrics; return the summary (also printed last, as JSON)."""
    codec = Codec.load(checkpoint)
    sr = codec.sample_rate
    chosen = evenly_spread(read_manifest(manifest, split), clips)
    if not chosen:
        raise SystemExit(f"no {split!r} clips in {manifest}")
    skip_reason = None
    if not opus:
        skip_reason = "disabled by --no-opus"
    elif shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        skip_reason = "ffmpeg/ffprobe not found (Debian package ffmpeg)"
    if skip_reason:
        print(f"opus comparison skipped: {skip_reason}")
    systems = ["codec"] + ([] if skip_reason else ["opus6", "opus_ours"])
    print(
        f"{codec.bitrate_bps / 1000:.2f} kbps codec, {len(chosen)} {split} clips of <= {seconds} s"
    )
    print(f"{'clip':<32} {'system':<10} {'mel':>7} {'stft':>7} {'si-sdr':>8}")

    rows: dict[str, list[dict]] = {s: [] for s in systems}
    opus_kbps: dict[str, list[float]] = {"opus6": [], "opus_ours": []}
    all_codes = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in chosen:
            wave = load_audio(clip.path, sr, 0, int(seconds * sr))
            ref = torch.from_numpy(wave)
            codes = codec.encode(ref)
            all_codes.append(codes)
            outputs = {"codec": codec.decode(codes)}
            if not skip_reason:
                for name, bps, cbr in (
                    ("opus6", 6000, False),
                    ("opus_ours", codec.bitrate_bps, True),
                ):
                    decoded, kbps = opus_roundtrip(wave, sr, int(bps), cbr, Path(tmp))
                    outputs[name] = torch.from_numpy(decoded)
                    opus_kbps[name].append(kbps)
            for name, est in outputs.items():
                metrics = clip_metrics(ref, est[: len(ref)], sr)
                rows[name].append(metrics)
                print(
                    f"{clip.id[:32]:<32} {name:<10} {metrics['mel_distance']:7.3f} "
                    f"{metrics['stft_distance']:7.3f} {metrics['si_sdr']:8.2f}"
                )

    means = {s: {m: float(np.mean([r[m] for r in rows[s]])) for m in METRICS} for s in systems}
    for name, values in means.items():
        print(
            f"{'mean':<32} {name:<10} {values['mel_distance']:7.3f} "
            f"{values['stft_distance']:7.3f} {values['si_sdr']:8.2f}"
        )
    usage = codebook_usage(torch.cat(all_codes, dim=-1), codec.codebook_size)
    print(
        "codebook usage (perplexity / size): "
        + " ".join(f"{u:.2f}" for u in usage["perplexity_share"])
    )

    rtf_wave = torch.from_numpy(load_audio(chosen[0].path, sr, 0, int(seconds * sr)))
    repeats = int(np.ceil(rtf_seconds * sr / len(rtf_wave)))
    rtf_wave = rtf_wave.repeat(repeats)[: int(rtf_seconds * sr)]
    rtf = {n: realtime_factor(codec, rtf_wave, n) for n in (1, 2)}
    print(
        f"encode+decode of {rtf_seconds:g} s: rtf {rtf[1]:.4f} on 1 thread "
        f"({1 / rtf[1]:.0f}x real time), {rtf[2]:.4f} on 2 threads ({1 / rtf[2]:.0f}x)"
    )

    def opus_value(system: str, metric: str) -> float | None:
        return means[system][metric] if system in means else None

    summary = {
        "checkpoint": str(checkpoint),
        "clips": len(chosen),
        "seconds": seconds,
        "bitrate_kbps": codec.bitrate_bps / 1000,
        "mel_distance": means["codec"]["mel_distance"],
        "stft_distance": means["codec"]["stft_distance"],
        "si_sdr": means["codec"]["si_sdr"],
        "opus6_mel_distance": opus_value("opus6", "mel_distance"),
        "opus6_stft_distance": opus_value("opus6", "stft_distance"),
        "opus6_si_sdr": opus_value("opus6", "si_sdr"),
        "opus6_kbps": _mean_or_none(opus_kbps["opus6"]),
        "opus_ours_mel_distance": opus_value("opus_ours", "mel_distance"),
        "opus_ours_stft_distance": opus_value("opus_ours", "stft_distance"),
        "opus_ours_si_sdr": opus_value("opus_ours", "si_sdr"),
        "opus_ours_kbps": _mean_or_none(opus_kbps["opus_ours"]),
        "opus_skipped": skip_reason,
        "codebook_usage": usage["perplexity_share"],
        "codebook_usage_min": min(usage["perplexity_share"]),
        "rtf_1thread": rtf[1],
        "rtf_2threads": rtf[2],
    }
    print(json.dumps(summary))
    return summary


def _mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="codec.pt from training")
    parser.add_argument("--manifest", type=Path, required=True, help="corpus manifest.jsonl")
    parser.add_argument("--clips", type=int, default=16, help="how many held-out clips")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each clip")
    parser.add_argument("--split", default="test", help="manifest split to evaluate on")
    parser.add_argument("--no-opus", action="store_true", help="skip the Opus comparison")
    parser.add_argument("--rtf-seconds", type=float, default=10.0, help="clip length for RTF")


def main(args: argparse.Namespace) -> None:
    evaluate(
        args.checkpoint,
        args.manifest,
        clips=args.clips,
        seconds=args.seconds,
        split=args.split,
        opus=not args.no_opus,
        rtf_seconds=args.rtf_seconds,
    )
