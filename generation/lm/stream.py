"""Streams that never end: an engine that continues many streams by one chunk at a time.

    engine = Engine.load()                                   # the shipped LM + codec
    session = engine.session(seed=7, steering=Steering.of("deep house", bpm=124))
    chunk = session.next_chunk()                             # 2 s of audio, its codes, provenance
    chunk = session.next_chunk(Steering.of("drum and bass", bpm=172))   # ramps over this chunk
    blob = session.to_bytes()                                # another worker goes on from here
    session = engine.restore(blob)
    chunks = engine.next_chunks([s1, s2, s3], [None, steer2, None])     # one batched model call

A session holds everything that determines what comes next: the steps in its context window (the
tokens it fed the model) and the condition of each of those steps, the current condition, the
sampler's RNG, the codec decoder's stream state and its sequence number. The KV cache is *not*
part of the state: it is rebuilt from the window by one forward pass (on restore, and whenever
the window is full and slides), so a serialised session is small (tens of KB) and another worker
continues it exactly.

Conditions: a chunk asked for with a new steering ramps from the current condition vector to the
new one linearly over that chunk's steps; ``hard_reset`` is the explicit, separate call that
drops the context and starts the music afresh (the decoder keeps its state, so there is no click).

Seams: the codec decoder is causal and carries its overlap-add tail and conv history across
chunks, so consecutive chunks join exactly as one long decode would: the crossfade at a seam is
the decoder's own overlap-add, and there is no seam to hide.

Classifier-free guidance runs every stream twice in the same batch, with its condition and with
the "unspecified" condition: logits = uncond + g * (cond - uncond).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from generation.codec import Codec, StreamState
from generation.lm.conditioning import TextEncoder, blend_embeddings, condition_features
from generation.lm.model import KVCache, TokenLM
from generation.steering import Controls, Steering

STATE_FORMAT = "chorus-stream-v1"


@dataclass
class Segment:
    """Condition of input positions [start, start + length): a linear ramp from `begin` to `end`
    (reaching `end` at the segment's last step, or after `ramp` steps when a splice cut the
    segment short: see Engine.next_chunks); begin == end for a steady condition."""

    start: int
    length: int
    begin: Tensor
    end: Tensor
    ramp: int = 0  # 0: the ramp spans the segment

    def at(self, first: int, last: int) -> Tensor:
        """Condition vectors of absolute positions first..last-1 (within this segment)."""
        i = torch.arange(
            first - self.start, last - self.start, dtype=torch.float32, device=self.begin.device
        )
        alpha = ((i + 1) / (self.ramp or self.length)).clamp(max=1.0)[:, None]
        return self.begin + alpha * (self.end - self.begin)


@dataclass(frozen=True)
class Splice:
    """Remake a chunk from its step `keep_steps` on under `steering` (Engine.next_chunks)."""

    keep_steps: int
    steering: Steering


@dataclass
class Chunk:
    sequence: int  # 0, 1, 2 ... per session
    pcm: np.ndarray  # float32 mono
    sample_rate: int
    codes: np.ndarray  # [K, frames] codec codes of this chunk
    start_frame: int  # position of the chunk's first frame in the stream
    steering: Steering
    provenance: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass
class Sampling:
    # classifier-free guidance scale; 1.0 turns it off (half the compute); None: the
    # checkpoint's recommended scale (Engine.default_guidance)
    guidance: float | None = None
    temperature: float = 1.0
    top_k: int = 250


class StreamSession:
    """One endless stream's state. Create with Engine.session(); advance with next_chunk()."""

    def __init__(self, engine: Engine, seed: int, steering: Steering, sampling: Sampling):
        self.engine = engine
        self.seed = seed
        self.sampling = sampling
        self.steering = steering
        k = engine.model.config.n_codebooks
        pad = engine.model.config.codebook_size
        self.generator = torch.Generator().manual_seed(seed)
        self.sequence = 0
        self.frames_out = 0  # frames emitted so far
        self.step = 0  # steps produced since the context (re)started
        self.base = 0  # absolute input position of window[0]
        self.window = torch.empty(k, 0, dtype=torch.long)  # tokens fed at each cached position
        self.last = torch.full((k,), pad, dtype=torch.long)  # the next input: previous step
        self.pending = torch.full((k, engine.model.pattern.latency), pad, dtype=torch.long)
        self.cond_now = engine.condition(steering)
        self.segments: list[Segment] = []
        self.decoder = engine.codec.init_stream(1)
        self.cache: KVCache | None = None  # rebuilt on demand; never serialised
        self.null_cache: KVCache | None = None

    # -- public API ---------------------------------------------------------------------------

    def next_chunk(self, steering: Steering | None = None) -> Chunk:
        return self.engine.next_chunks([self], [steering])[0]

    def hard_reset(self, steering: Steering | None = None) -> None:
        """Drop the context: the next chunk starts new music (under ``steering`` if given)."""
        k, pad = self.window.shape[0], self.engine.model.config.codebook_size
        if steering is not None:
            self.steering = steering
            self.cond_now = self.engine.condition(steering)
        self.base += self.window.shape[-1]
        self.window = torch.empty(k, 0, dtype=torch.long)
        self.last = torch.full((k,), pad, dtype=torch.long)
        self.pending = torch.full_like(self.pending, pad)
        self.step = 0
        self.segments = []
        self.cache = self.null_cache = None

    def prime(self, codes: Tensor) -> None:
        """Start from existing music: codes [K, F] (e.g. a user's reference clip) become the
        context, and the decoder hears them, so the stream continues them seamlessly."""
        if self.step or self.window.shape[-1]:
            raise RuntimeError("prime() is for a fresh session")
        pattern = self.engine.model.pattern
        context = self.engine.model.config.context
        if codes.shape[0] != pattern.n_codebooks or int(codes.max()) >= pattern.pad_token:
            raise ValueError(
                f"reference codes must be [{pattern.n_codebooks}, F] below "
                f"{pattern.pad_token}, got {tuple(codes.shape)}"
            )
        codes = codes[:, -(context - self.engine.chunk_frames - pattern.latency - 1) :].long()
        steps = pattern.apply(codes[None])[0]  # step s holds level k of frame s - k
        # feed: BOS, then every step but the last; the last step is the next input
        bos = torch.full((codes.shape[0], 1), self.engine.model.config.codebook_size)
        self.window = torch.cat([bos, steps[:, :-1]], dim=-1)
        self.last = steps[:, -1].clone()
        self.pending = steps[:, -pattern.latency :].clone() if pattern.latency else self.pending
        self.step = steps.shape[-1]
        n = self.window.shape[-1]
        self.segments = [Segment(self.base, n, self.cond_now, self.cond_now)]
        # the frames completed by these steps are the reference's; the partial ones at the end
        # are finished by the next chunk, whose first frames continue the reference
        done = codes[:, : codes.shape[-1] - pattern.latency]
        done = done.to(self.engine.device)
        _, self.decoder = self.engine.codec.decode_stream(done[None], self.decoder)
        self.cache = self.null_cache = None

    def to_bytes(self) -> bytes:
        """Everything needed to continue this stream elsewhere (npz: small, no pickle)."""
        meta = {
            "format": STATE_FORMAT,
            "model_version": self.engine.model_version,
            "seed": self.seed,
            "sequence": self.sequence,
            "frames_out": self.frames_out,
            "step": self.step,
            "base": self.base,
            "steering": self.steering.as_dict(),
            "sampling": self.sampling.__dict__,
            "segments": [[s.start, s.length, s.ramp] for s in self.segments],
            "decoder_frames": self.decoder.frames,
        }
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "window": self.window.numpy().astype(np.int16),
            "last": self.last.numpy().astype(np.int16),
            "pending": self.pending.numpy().astype(np.int16),
            "cond_now": self.cond_now.cpu().numpy(),
            "rng": self.generator.get_state().numpy(),
            "overlap": self.decoder.overlap.cpu().numpy(),
        }
        for i, s in enumerate(self.segments):
            arrays[f"seg{i}_begin"] = s.begin.cpu().numpy()
            arrays[f"seg{i}_end"] = s.end.cpu().numpy()
        for i, h in enumerate(self.decoder.history):
            arrays[f"history{i}"] = h.cpu().numpy()
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    # -- internals ----------------------------------------------------------------------------

    def conditions(self, first: int, last: int) -> Tensor:
        """Condition vectors of absolute input positions first..last-1, from the segments."""
        parts = []
        for s in self.segments:
            lo, hi = max(first, s.start), min(last, s.start + s.length)
            if lo < hi:
                parts.append(s.at(lo, hi))
        out = torch.cat(parts) if parts else self.cond_now.new_empty(0, self.cond_now.shape[0])
        if out.shape[0] != last - first:
            raise RuntimeError("condition segments do not cover the window")
        return out

    def add_segment(self, begin: Tensor, end: Tensor, length: int) -> None:
        start = self.base + self.window.shape[-1]
        self.segments.append(Segment(start, length, begin, end))

    def shorten(self, keep: int) -> None:
        """Keep only the last ``keep`` steps of context (the old music's pull fades faster)."""
        if self.window.shape[-1] > keep:
            drop = self.window.shape[-1] - keep
            self.window = self.window[:, drop:]
            self.base += drop
            self.segments = [s for s in self.segments if s.start + s.length > self.base]
            self.cache = self.null_cache = None

    def ensure_room(self, steps: int) -> None:
        """Slide the window if ``steps`` more would overflow it, then (re)build the caches."""
        context = self.engine.model.config.context
        length = self.window.shape[-1]
        if length + steps > context:
            keep = max(0, context - steps - self.engine.slide_margin)
            drop = length - keep
            self.window = self.window[:, drop:]
            self.base += drop
            self.segments = [s for s in self.segments if s.start + s.length > self.base]
            self.cache = self.null_cache = None
        if self.cache is None:
            self.cache, self.null_cache = self.engine.prefill(self)


class Engine:
    """The model, the codec and the text encoder, with batched chunk generation on top."""

    def __init__(
        self,
        model: TokenLM,
        codec: Codec,
        model_version: str,
        chunk_s: float = 2.0,
        text: TextEncoder | None = None,
        switch_context_s: float | None = 1.0,
        device: str = "cpu",
    ):
        self.model, self.codec = model.eval().to(device), codec.eval().to(device)
        self.model_version = model_version
        self.frame_rate = model.config.frame_rate
        self.set_chunk_s(chunk_s)
        # when the leading prompt changes, keep only this much context (None: keep it all)
        self.switch_context_s: float | None = switch_context_s
        self._text = text
        self.device = device
        self._null: Tensor | None = None
        self._conditions: dict[str, Tensor] = {}
        # the scale the checkpoint was tuned for (its model card says how it was chosen)
        self.default_guidance = float(getattr(model, "extra", {}).get("guidance", 3.0))

    def set_chunk_s(self, chunk_s: float) -> None:
        """Seconds of music per chunk from now on (sessions keep working across a change)."""
        self.chunk_frames = round(chunk_s * self.frame_rate)
        self.slide_margin = self.chunk_frames  # slide a little further so slides are rare

    @classmethod
    def load(cls, lm_path=None, codec_path=None, **kwargs) -> Engine:
        from pathlib import Path

        from generation.codec import DEFAULT_CHECKPOINT as CODEC
        from generation.lm import DEFAULT_CHECKPOINT as LM

        # CHORUS_TORCH_THREADS: the embedded default sets 1, so the web server keeps a core
        # (two busy pools on two cores thrash: a 2 s chunk went from 0.2 s to several seconds)
        if os.environ.get("CHORUS_TORCH_THREADS"):
            torch.set_num_threads(int(os.environ["CHORUS_TORCH_THREADS"]))
        # CHORUS_DEVICE: where the model runs (cpu, cuda, cuda:1 ...); a worker process per GPU
        device = kwargs.pop("device", None) or os.environ.get("CHORUS_DEVICE") or "cpu"
        lm_path, codec_path = Path(lm_path or LM), Path(codec_path or CODEC)
        model = TokenLM.load(lm_path, map_location=device)
        codec = Codec.load(codec_path, map_location=device)
        return cls(model, codec, lm_path.stem, device=device, **kwargs)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def text(self) -> TextEncoder:
        if self._text is None:
            self._text = TextEncoder.shared()
        return self._text

    def session(
        self, seed: int, steering: Steering | None = None, sampling: Sampling | None = None
    ) -> StreamSession:
        sampling = sampling or Sampling()
        if sampling.guidance is None:
            sampling = replace(sampling, guidance=self.default_guidance)
        return StreamSession(self, seed, steering or Steering(), sampling)

    # -- conditions ---------------------------------------------------------------------------

    @torch.no_grad()
    def condition(self, steering: Steering) -> Tensor:
        """The condition vector [D] of a steering (cached: rooms repeat themselves)."""
        key = json.dumps(steering.as_dict(), sort_keys=True)
        if key not in self._conditions:
            embedding = None
            prompts = [(t, w) for t, w in steering.prompts if t.strip() and w > 0]
            if prompts:
                vectors = self.text.encode([t for t, _ in prompts])
                embedding = blend_embeddings(vectors, [w for _, w in prompts])
            features = condition_features([(embedding, steering.controls)], self.model.config.vocab)
            if len(self._conditions) > 4096:
                self._conditions.clear()
            self._conditions[key] = self.model.encode_condition(self._on_device(features))[0]
        return self._conditions[key]

    @property
    def null_condition(self) -> Tensor:
        if self._null is None:
            with torch.no_grad():
                features = condition_features([(None, Controls())], self.model.config.vocab)
                self._null = self.model.encode_condition(self._on_device(features))[0]
        return self._null

    def _on_device(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        return {name: t.to(self.device) for name, t in tensors.items()}

    # -- generation ---------------------------------------------------------------------------

    @torch.no_grad()
    def prefill(self, s: StreamSession) -> tuple[KVCache, KVCache | None]:
        """Caches of a session's window, conditioned and (with guidance) unconditioned."""
        n, config = s.window.shape[-1], self.model.config
        if n == 0:
            empty = KVCache.empty(config, 1, self.device)
            guided = s.sampling.guidance != 1
            return empty, (KVCache.empty(config, 1, self.device) if guided else None)
        conds = s.conditions(s.base, s.base + n)[None]
        window = s.window[None].to(self.device)
        _, cache = self.model(window, conds, return_cache=True)
        null = None
        if s.sampling.guidance != 1.0:
            nulls = self.null_condition.expand(1, n, -1)
            _, null = self.model(window, nulls, return_cache=True)
        return cache, null

    @torch.no_grad()
    def next_chunks(
        self,
        sessions: Sequence[StreamSession],
        steerings: Sequence[Steering | None] | None = None,
        splices: Sequence[Splice | None] | None = None,
    ) -> list[Chunk]:
        """Advance every session by one chunk in one batched run (they may be at any point).

        A session's `splices` entry (a Splice) remakes a chunk from the middle: its first
        `keep_steps` steps are made exactly as they were (same state, same `steerings` entry,
        same random draws: the same tokens), and from there the condition ramps to the splice's
        steering over the rest of the chunk. A room uses it to let a vote be heard mid-chunk:
        listeners switch to the remake where it starts to differ (generation.tasks)."""
        started = time.perf_counter()
        steerings = list(steerings or [None] * len(sessions))
        splices = list(splices or [None] * len(sessions))
        latency = self.model.pattern.latency
        for s in sessions:  # a stream that just (re)started first fills its delay pattern
            if s.step < latency:
                first = s.step
                produced = self._run_steps([s], latency - first)[0]
                _, pending = self.model.pattern.frames(produced[None], first, s.pending[None])
                s.pending = pending[0]
        begins = []
        for s, steering in zip(sessions, steerings, strict=True):
            begin = s.cond_now
            if steering is not None:
                if self.switch_context_s is not None and leading(steering) != leading(s.steering):
                    s.shorten(round(self.switch_context_s * self.frame_rate))
                s.steering, s.cond_now = steering, self.condition(steering)
            begins.append(begin)
        steps = self.chunk_frames
        for s, begin, splice in zip(sessions, begins, splices, strict=True):
            s.ensure_room(steps)
            if splice is None or not 0 < splice.keep_steps < steps:
                s.add_segment(begin, s.cond_now, steps)
                continue
            # the kept steps see the very conditions the chunk was made with (the same ramp,
            # cut short); the rest ramps from there to the splice's steering
            keep, start = splice.keep_steps, s.base + s.window.shape[-1]
            kept = Segment(start, keep, begin, s.cond_now, ramp=steps)
            turn = kept.at(start + keep - 1, start + keep)[0]
            s.steering, s.cond_now = splice.steering, self.condition(splice.steering)
            s.segments += [kept, Segment(start + keep, steps - keep, turn, s.cond_now)]
        new = self._run_steps(sessions, steps, segments_added=True)
        frames = []
        for s, produced in zip(sessions, new, strict=True):
            done, s.pending = self.model.pattern.frames(
                produced[None], s.step - steps, s.pending[None]
            )
            s.pending = s.pending[0]
            frames.append(done[0])
        pcm = self._decode(sessions, frames)
        elapsed = time.perf_counter() - started
        chunks = []
        for s, codes, audio in zip(sessions, frames, pcm, strict=True):
            chunks.append(
                Chunk(
                    sequence=s.sequence,
                    pcm=audio,
                    sample_rate=self.sample_rate,
                    codes=codes.numpy().astype(np.int16),
                    start_frame=s.frames_out,
                    steering=s.steering,
                    provenance={
                        "model_version": self.model_version,
                        "seed": s.seed,
                        "sequence": s.sequence,
                        "start_frame": s.frames_out,
                        "guidance": s.sampling.guidance,
                        "batch": len(sessions),
                        "compute_s": round(elapsed, 4),
                    },
                )
            )
            s.sequence += 1
            s.frames_out += codes.shape[-1]
        return chunks

    def _run_steps(
        self, sessions: Sequence[StreamSession], steps: int, segments_added: bool = False
    ) -> list[Tensor]:
        """Run `steps` model steps for every session together; returns each one's new steps."""
        if not segments_added:
            for s in sessions:
                s.ensure_room(steps)
                s.add_segment(s.cond_now, s.cond_now, steps)
        guided = [s.sampling.guidance != 1.0 for s in sessions]
        caches = [s.cache for s in sessions] + [
            s.null_cache for s, g in zip(sessions, guided, strict=True) if g
        ]
        cache = KVCache.stack(caches)
        n, k = len(sessions), self.model.config.n_codebooks
        pad = self.model.config.codebook_size
        # per chunk, not per step: every row's conditions for the whole chunk, and the inputs fed
        starts = [s.base + s.window.shape[-1] for s in sessions]
        conds = torch.stack(
            [s.conditions(p, p + steps) for s, p in zip(sessions, starts, strict=True)]
        )
        null_rows = self.null_condition.expand(sum(guided), -1)
        guided_rows = torch.tensor(guided, dtype=torch.bool)
        levels = torch.arange(k)
        fed: list[list[Tensor]] = [[] for _ in sessions]
        out = [torch.empty(k, steps, dtype=torch.long) for _ in sessions]
        for t in range(steps):
            inputs = torch.stack([s.last for s in sessions])
            rows_in = torch.cat([inputs, inputs[guided_rows]]).to(self.device)
            rows_cond = torch.cat([conds[:, t], null_rows])
            # sampled on the CPU with the sessions' CPU generators, whatever the device: a
            # stream's state (its RNG included) continues on any worker, GPU or not
            logits = self.model.step(rows_in, rows_cond, cache).cpu()
            g = 0
            for i, s in enumerate(sessions):
                row = logits[i]
                if guided[i]:
                    uncond = logits[n + g]
                    g += 1
                    row = uncond + s.sampling.guidance * (row - uncond)
                codes = sample(row, s.sampling, s.generator)
                # levels that reach back before the stream began stay PAD
                codes[levels > s.step] = pad
                fed[i].append(s.last)
                s.last = codes
                s.step += 1
                out[i][:, t] = codes
        for s, inputs in zip(sessions, fed, strict=True):
            s.window = torch.cat([s.window, torch.stack(inputs, dim=-1)], dim=-1)
        sizes = [1] * n + [1] * sum(guided)
        parts = cache.split(sizes)
        g = 0
        for i, s in enumerate(sessions):
            s.cache = parts[i]
            if guided[i]:
                s.null_cache = parts[n + g]
                g += 1
        return out

    def _decode(self, sessions: Sequence[StreamSession], frames: list[Tensor]) -> list[np.ndarray]:
        """Decode every session's new frames with its own decoder state, batched when equal."""
        lengths = {f.shape[-1] for f in frames}
        if len(lengths) == 1:
            codes = torch.stack(frames).to(self.device)
            state = stack_states([s.decoder for s in sessions])
            pcm, state = self.codec.decode_stream(codes, state)
            for s, st in zip(sessions, split_state(state, len(sessions)), strict=True):
                s.decoder = st
            return [p.numpy().astype(np.float32).clip(-1, 1) for p in pcm.cpu()]
        out = []
        for s, f in zip(sessions, frames, strict=True):
            pcm, s.decoder = self.codec.decode_stream(f[None].to(self.device), s.decoder)
            out.append(pcm[0].cpu().numpy().astype(np.float32).clip(-1, 1))
        return out

    @torch.no_grad()
    def decode_codes(self, codes: np.ndarray, decoder: StreamState) -> np.ndarray:
        """The audio of codes [K, F] decoded from `decoder` (a session's decoder state, left
        as it was): what a chunk with these codes sounded like (generation.tasks splices)."""
        frames = torch.from_numpy(np.asarray(codes, dtype=np.int64))[None].to(self.device)
        pcm, _ = self.codec.decode_stream(frames, decoder)
        return pcm[0].cpu().numpy().astype(np.float32).clip(-1, 1)

    def restore(self, blob: bytes) -> StreamSession:
        """A session from StreamSession.to_bytes(), ready to continue exactly."""
        data = np.load(io.BytesIO(blob))
        meta = json.loads(data["meta"].tobytes().decode())
        if meta.get("format") != STATE_FORMAT:
            raise ValueError("not a chorus stream state")
        if meta["model_version"] != self.model_version:
            raise ValueError(
                f"state is for model {meta['model_version']}, this engine runs {self.model_version}"
            )
        s = StreamSession(
            self, meta["seed"], Steering.from_dict(meta["steering"]), Sampling(**meta["sampling"])
        )
        s.sequence, s.frames_out = meta["sequence"], meta["frames_out"]
        s.step, s.base = meta["step"], meta["base"]
        s.window = torch.from_numpy(data["window"].astype(np.int64))
        s.last = torch.from_numpy(data["last"].astype(np.int64))
        s.pending = torch.from_numpy(data["pending"].astype(np.int64))
        device = self.device
        s.cond_now = torch.from_numpy(data["cond_now"]).to(device)
        s.generator.set_state(torch.from_numpy(data["rng"]))
        s.segments = [
            Segment(
                seg[0],
                seg[1],
                torch.from_numpy(data[f"seg{i}_begin"]).to(device),
                torch.from_numpy(data[f"seg{i}_end"]).to(device),
                seg[2] if len(seg) > 2 else 0,  # states written before splices had no ramp
            )
            for i, seg in enumerate(meta["segments"])
        ]
        n = len(s.decoder.history)
        history = [torch.from_numpy(data[f"history{i}"]).to(device) for i in range(n)]
        overlap = torch.from_numpy(data["overlap"]).to(device)
        s.decoder = StreamState(history, overlap, meta["decoder_frames"])
        return s


def leading(steering: Steering) -> str | None:
    """The prompt with the largest weight (what a listener would say the music is "about")."""
    prompts = [(w, t) for t, w in steering.prompts if t.strip() and w > 0]
    return max(prompts)[1] if prompts else None


def sample(logits: Tensor, sampling: Sampling, generator: torch.Generator) -> Tensor:
    """One code per level from logits [K, card]: top-k, temperature, multinomial."""
    if sampling.temperature <= 0:
        return logits.argmax(-1)
    top = min(sampling.top_k, logits.shape[-1])
    values, indices = logits.topk(top, dim=-1)
    probs = torch.softmax(values / sampling.temperature, dim=-1)
    choice = torch.multinomial(probs, 1, generator=generator)
    return indices.gather(-1, choice)[:, 0]


def stack_states(states: list[StreamState]) -> StreamState:
    return StreamState(
        [torch.cat([s.history[i] for s in states]) for i in range(len(states[0].history))],
        torch.cat([s.overlap for s in states]),
        states[0].frames,
    )


def split_state(state: StreamState, n: int) -> list[StreamState]:
    return [
        StreamState([h[i : i + 1] for h in state.history], state.overlap[i : i + 1], state.frames)
        for i in range(n)
    ]
