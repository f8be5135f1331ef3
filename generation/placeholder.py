"""A labelled placeholder tone, used until the neural engine lands. It is not music.

It exists so the whole song pipeline (queue, progress, storage, transcoding, sharing) is exercised
end to end. Songs it makes are marked `is_placeholder=True` and model version
`placeholder-tone-v1`, and the UI labels them as such.
"""

from __future__ import annotations

import numpy as np

from generation.interface import ProgressCallback, RenderedSong, SongRequest

SAMPLE_RATE = 24_000


class PlaceholderToneGenerator:
    model_version = "placeholder-tone-v1"

    def generate_song(self, request: SongRequest, progress: ProgressCallback) -> RenderedSong:
        rng = np.random.default_rng(request.seed)
        base_hz = float(rng.choice([196.0, 220.0, 246.9, 261.6, 293.7]))
        total = int(round(request.duration_s * SAMPLE_RATE))
        out = np.empty(total, dtype=np.float32)
        block = SAMPLE_RATE  # one second at a time, so progress is reported as it goes
        for start in range(0, total, block):
            t = np.arange(start, min(start + block, total), dtype=np.float64) / SAMPLE_RATE
            # A slow two-tone beep (a test signal, on purpose): base and fifth, 1 s on/off envelope.
            envelope = 0.5 * (1 - np.cos(2 * np.pi * t / 2.0))
            tone = np.sin(2 * np.pi * base_hz * t) + 0.5 * np.sin(2 * np.pi * base_hz * 1.5 * t)
            out[start : start + len(t)] = (0.3 * envelope * tone).astype(np.float32)
            progress(min(1.0, (start + len(t)) / total))
        return RenderedSong(
            pcm=out,
            sample_rate=SAMPLE_RATE,
            model_version=self.model_version,
            is_placeholder=True,
            provenance={"generator": "placeholder", "seed": request.seed, "base_hz": base_hz},
        )
