"""Evaluate the token LM: speed on this machine, and whether it does what it is asked.

    python -m generation.eval lm [--checkpoint generation/checkpoints/lm-small-v1.pt] \\
        --probe var/checkpoints/probe.pt --manifest var/corpus/full/manifest.jsonl \\
        [--seeds 2] [--stream-minutes 10] [--threads 2]

Speed (codec decode included, classifier-free guidance on, chunks of ``--chunk-s``: 1 s, as
rooms use):
* ``rtf_single_cfg``: audio seconds per wall second for one stream.
* ``rooms_realtime``: the most streams one batched call keeps at real time (a chunk of every
  stream computed in less than the chunk's duration), trying 1, 2, 4, 8, 12, 16, 24, 32, 48, 64.
* a long stream (``--stream-minutes``): time per chunk and resident memory, first minute against
  last, so a leak or a slowdown shows.

Control, judged by the attribute probe (generation/probe) on generated audio, next to the same
probe on held-out real clips (``probe_ceiling``, ``tempo_ceiling``):
* ``style_accuracy``: a 10 s clip per style and seed, from the style's name as the prompt (with
  prompt expansion, as the product does); the probe's style must be the prompt's.
* ``tempo_within_8pct``: clips of the styles with a beat, at a requested BPM drawn from the
  style's range; the beat tracker must land within 8% of it.
* ``steer_flip_rate``: 3 chunks of style A, then the blend switches to B; a trial flips when the
  probe calls B on either of the 2 chunks after the switch.
* ``seam_ratio``: the largest sample jump across chunk seams over the largest within chunks.
* ``influence_gain``: probe similarity of a continuation primed with a reference clip (Influence)
  to that reference, minus the same for an unprimed stream with the same seed.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from generation.data.manifest import iter_clips, read_manifest
from generation.lm import DEFAULT_CHECKPOINT, Engine, Sampling, Steering
from generation.lm.songs import expand
from generation.tasks import ROOM_CHUNK_S

QUALITY_CHUNK_S = 2.0  # the clips judged by the probe: 5 chunks, 10 s (speed uses --chunk-s)
BEAT_STYLES = ("techno", "house", "drum and bass", "rock", "jazz trio", "lofi hip hop")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def steering_for(engine: Engine, style: str, **controls) -> Steering:
    """A style's name as the prompt, with prompt expansion as the product does it."""
    base = Steering.of(style, **controls)
    filled, _ = expand(engine, style, base.controls)
    return Steering(base.prompts, filled)


def run_streams(
    engine: Engine,
    steerings: list[Steering],
    chunks: int,
    seed: int,
    switch: dict[int, list[Steering]] | None = None,
    guidance: float | None = None,
) -> list[list[np.ndarray]]:
    """Batched streams; switch maps a chunk index to the steerings asked from then on."""
    sessions = [
        engine.session(seed + i, s, Sampling(guidance=guidance)) for i, s in enumerate(steerings)
    ]
    out: list[list[np.ndarray]] = [[] for _ in sessions]
    for n in range(chunks):
        asks = (switch or {}).get(n, [None] * len(sessions))
        for i, chunk in enumerate(engine.next_chunks(sessions, asks)):
            out[i].append(chunk.pcm)
    return out


def speed(engine: Engine, minutes: float) -> dict:
    chunk_s = engine.chunk_frames / engine.frame_rate
    session = engine.session(0, steering_for(engine, "techno"))
    session.next_chunk()
    started = time.perf_counter()
    for _ in range(10):
        session.next_chunk()
    rtf = 10 * chunk_s / (time.perf_counter() - started)

    per_batch = {}
    best = 0
    for size in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64):
        sessions = [engine.session(i, steering_for(engine, "house")) for i in range(size)]
        engine.next_chunks(sessions)
        started = time.perf_counter()
        for _ in range(4):  # long enough to include a window slide
            engine.next_chunks(sessions)
        wall = (time.perf_counter() - started) / 4
        per_batch[size] = round(wall, 3)
        tqdm.write(f"batch {size:>3}: {wall * 1000:.0f} ms per {chunk_s:.1f} s chunk")
        if wall >= chunk_s:
            break
        best = size

    n_chunks = int(minutes * 60 / chunk_s)
    session = engine.session(1, steering_for(engine, "ambient"))
    times, memory = [], []
    for _ in tqdm(range(n_chunks), desc="long stream", unit="chunk"):
        t = time.perf_counter()
        session.next_chunk()
        times.append(time.perf_counter() - t)
        memory.append(rss_mb())
    minute = max(1, int(60 / chunk_s))
    return {
        "rtf_single_cfg": round(rtf, 2),
        "rooms_realtime": best,
        "batch_chunk_s": per_batch,
        "stream_minutes": minutes,
        "stream_chunk_ms_first_min": round(1000 * float(np.mean(times[1:minute])), 1),
        "stream_chunk_ms_last_min": round(1000 * float(np.mean(times[-minute:])), 1),
        "stream_rss_mb_after_warmup": round(memory[min(len(memory) - 1, minute)], 1),
        "stream_rss_mb_end": round(memory[-1], 1),
    }


def quality(engine: Engine, probe, manifest: Path, seeds: int) -> dict:
    styles = [s["style"] for s in engine.model.extra["styles"]]
    table = {s["style"]: s for s in engine.model.extra["styles"]}
    sr = engine.sample_rate
    rng = random.Random(0)

    # the probe's ceiling on held-out real clips, 10 per style
    test_rows = read_manifest(manifest, "test")
    per_style: dict[str, int] = {}
    hits = total = tempo_hits = tempo_total = 0
    references = []
    for row, audio in iter_clips(manifest, "test"):
        if per_style.get(row["style"], 0) >= 10:
            continue
        per_style[row["style"]] = per_style.get(row["style"], 0) + 1
        hits += probe.predict_style(audio, sr)[0] == row["style"]
        total += 1
        if row["style"] in BEAT_STYLES:
            tempo_total += 1
            tempo_hits += abs(probe.tempo(audio, sr) - row["bpm"]) <= 0.08 * row["bpm"]
        if per_style[row["style"]] == 1:
            references.append((row, audio))
    del test_rows

    # style: a 10 s clip per style and seed, all styles batched
    style_hits, style_total, verdicts = 0, 0, {}
    for seed in range(seeds):
        clips = run_streams(engine, [steering_for(engine, s) for s in styles], 5, 100 * seed)
        for style, chunks in zip(styles, clips, strict=True):
            said = probe.predict_style(np.concatenate(chunks), sr)[0]
            verdicts.setdefault(style, []).append(said)
            style_hits += said == style
            style_total += 1
    seam = seam_ratio(clips)

    # tempo: requested BPMs across each beat style's range
    asks = []
    for style in [s for s in styles if s in BEAT_STYLES]:
        lo, hi = table[style]["bpm_range"]
        for _ in range(max(2, seeds * 2)):
            asks.append((style, round(rng.uniform(lo, hi))))
    clips = run_streams(engine, [steering_for(engine, s, bpm=b) for s, b in asks], 5, 7)
    tempo_rows = []
    for (style, bpm), chunks in zip(asks, clips, strict=True):
        got = probe.tempo(np.concatenate(chunks[1:]), sr)
        tempo_rows.append({"style": style, "asked": bpm, "heard": round(got, 1)})
    within = [abs(r["heard"] - r["asked"]) <= 0.08 * r["asked"] for r in tempo_rows]

    # steering: A for 3 chunks, then B
    pairs = []
    for _ in range(max(24, 16 * seeds)):  # 32 trials with 2 seeds: a switch is noisy
        a, b = rng.sample(styles, 2)
        pairs.append((a, b))
    clips = run_streams(
        engine,
        [steering_for(engine, a) for a, _ in pairs],
        5,
        11,
        switch={3: [steering_for(engine, b) for _, b in pairs]},
    )
    flips, before = 0, 0
    for (a, b), chunks in zip(pairs, clips, strict=True):
        after = [probe.predict_style(c, sr)[0] for c in chunks[3:5]]
        flips += b in after
        before += probe.predict_style(chunks[2], sr)[0] == a

    # influence: continuation of a reference vs the same seed without one
    gains = []
    for i, (_, audio) in enumerate(references):
        ref = torch.from_numpy(audio[-6 * sr :])
        codes = engine.codec.encode(ref)[: engine.model.config.n_codebooks]
        primed = engine.session(500 + i, Steering())
        primed.prime(codes)
        plain = engine.session(500 + i, Steering())
        out = [[], []]
        for _ in range(4):
            for j, chunk in enumerate(engine.next_chunks([primed, plain])):
                out[j].append(chunk.pcm)
        sims = [probe.similarity(np.concatenate(o), audio, sr) for o in out]
        gains.append(sims[0] - sims[1])

    return {
        "style_accuracy": round(style_hits / style_total, 3),
        "probe_ceiling": round(hits / total, 3),
        "tempo_within_8pct": round(float(np.mean(within)), 3),
        "tempo_ceiling": round(tempo_hits / max(1, tempo_total), 3),
        "steer_flip_rate": round(flips / len(pairs), 3),
        "steer_pre_switch_agree": round(before / len(pairs), 3),
        "seam_ratio": round(seam, 3),
        "influence_gain": round(float(np.mean(gains)), 4),
        "style_verdicts": verdicts,
        "tempo": tempo_rows,
    }


def seam_ratio(streams: list[list[np.ndarray]]) -> float:
    seams, within = 0.0, 0.0
    for chunks in streams:
        for prev, cur in zip(chunks, chunks[1:], strict=False):
            seams = max(seams, abs(float(cur[0]) - float(prev[-1])))
        for c in chunks:
            within = max(within, float(np.abs(np.diff(c)).max()))
    return seams / max(within, 1e-9)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--probe", type=Path, default=Path("var/checkpoints/probe.pt"))
    parser.add_argument("--manifest", type=Path, default=Path("var/corpus/full/manifest.jsonl"))
    parser.add_argument("--seeds", type=int, default=2, help="clips per style")
    parser.add_argument("--stream-minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--chunk-s", type=float, default=ROOM_CHUNK_S, help="seconds per chunk, as rooms use"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    engine = Engine.load(args.checkpoint, chunk_s=QUALITY_CHUNK_S)
    result = {
        "checkpoint": str(args.checkpoint),
        "threads": args.threads,
        "chunk_s": args.chunk_s,
        "device": "cpu",
        "params_m": round(engine.model.n_params() / 1e6, 2),
    }
    if not args.skip_quality:
        from generation.probe import AttributeProbe

        probe = AttributeProbe.load(args.probe)
        result.update(quality(engine, probe, args.manifest, args.seeds))
    if not args.skip_speed:
        engine.set_chunk_s(args.chunk_s)
        result.update(speed(engine, args.stream_minutes))
    result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))
