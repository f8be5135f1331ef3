"""The token LM: a decoder-only transformer over delay-pattern steps of codec codes.

    step s input:  sum over levels k of Embed_k(code of step s-1, level k)  + cond(s)
    6 blocks:      x += Attn(LN x)  (causal, rotary positions, KV-cached)
                   x += W_l cond(s)  (the condition again at every block)
                   x += MLP(LN x)
    output:        K heads, logits over the codebook for every level of step s

The condition of a step is one vector (ConditionEncoder: prompts + controls). It is *added* per
step rather than given as a prefix or through cross-attention, so a stream's condition can change
at any step: a ramp between two blends is just a per-step interpolation of two vectors, and a
sliding context window never has to keep a prefix alive.

Rotary positions make attention depend only on distance, so the KV cache of a stream is a window
of at most ``context`` steps: when it fills, the stream keeps its most recent steps and rebuilds
the cache from their tokens and conditions (:mod:`generation.lm.session`), which is how a stream
goes on forever. Every row of a batched step has its own cache length and position, so
independent streams at different points advance together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generation.checkpoint import load_fp16, save_fp16
from generation.lm.conditioning import ConditionEncoder, Vocab
from generation.lm.pattern import DelayPattern

FILE_FORMAT = "chorus-lm-v1"


@dataclass
class LMConfig:
    n_codebooks: int = 8
    codebook_size: int = 1024
    dim: int = 256
    layers: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    context: int = 256  # steps in the attention window (10.24 s at 25 Hz)
    frame_rate: float = 25.0
    sections: list[str] = field(default_factory=list)
    instruments: list[str] = field(default_factory=list)
    codec: str = "codec-small-v1"  # the codec whose codes this LM speaks

    @property
    def vocab(self) -> Vocab:
        return Vocab(tuple(self.sections), tuple(self.instruments))

    @property
    def pattern(self) -> DelayPattern:
        return DelayPattern(self.n_codebooks, pad_token=self.codebook_size)

    @classmethod
    def preset(cls, name: str, **overrides) -> LMConfig:
        presets = {
            "default": {},
            "small": {"dim": 192, "layers": 4, "heads": 3},
            "tiny": {
                "dim": 32,
                "layers": 2,
                "heads": 2,
                "context": 48,
                "n_codebooks": 3,
            },
        }
        if name not in presets:
            raise ValueError(f"unknown preset {name!r} (known: {', '.join(presets)})")
        return cls(**{**presets[name], **overrides})


def rotary_tables(positions: int, head_dim: int) -> tuple[Tensor, Tensor]:
    freqs = 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.arange(positions).float()[:, None] * freqs[None]
    return angles.cos(), angles.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding of x [..., T, Dh] with tables [..., T, Dh/2] (pairs are the two halves)."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


@dataclass
class KVCache:
    """Per-layer keys and values [B, H, context, Dh] plus each row's filled length [B]."""

    k: list[Tensor]
    v: list[Tensor]
    lengths: Tensor

    @classmethod
    def empty(cls, config: LMConfig, batch: int, device=None) -> KVCache:
        shape = (batch, config.heads, config.context, config.dim // config.heads)
        return cls(
            [torch.zeros(shape, device=device) for _ in range(config.layers)],
            [torch.zeros(shape, device=device) for _ in range(config.layers)],
            torch.zeros(batch, dtype=torch.long, device=device),
        )

    def select(self, rows: list[int]) -> KVCache:
        idx = torch.tensor(rows, dtype=torch.long, device=self.lengths.device)
        return KVCache([k[idx] for k in self.k], [v[idx] for v in self.v], self.lengths[idx])

    @classmethod
    def stack(cls, caches: list[KVCache]) -> KVCache:
        return cls(
            [torch.cat([c.k[i] for c in caches]) for i in range(len(caches[0].k))],
            [torch.cat([c.v[i] for c in caches]) for i in range(len(caches[0].v))],
            torch.cat([c.lengths for c in caches]),
        )

    def split(self, sizes: list[int]) -> list[KVCache]:
        out, start = [], 0
        for size in sizes:
            rows = list(range(start, start + size))
            out.append(self.select(rows))
            start += size
        return out


class Block(nn.Module):
    def __init__(self, c: LMConfig):
        super().__init__()
        self.heads, self.head_dim = c.heads, c.dim // c.heads
        self.ln1 = nn.LayerNorm(c.dim)
        self.qkv = nn.Linear(c.dim, 3 * c.dim, bias=False)
        self.out = nn.Linear(c.dim, c.dim, bias=False)
        self.ln2 = nn.LayerNorm(c.dim)
        hidden = int(c.dim * c.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(c.dim, hidden), nn.GELU(), nn.Linear(hidden, c.dim))

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, self.head_dim).unbind(2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, Dh]

    def forward(self, x: Tensor, cond: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, ...]:
        """Causal pass over a whole sequence x [B, T, D]; returns (x, k, v) for caching."""
        q, k, v = self._qkv(x)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(a.transpose(1, 2).reshape(x.shape)) + cond
        return x + self.mlp(self.ln2(x)), k, v

    def step(
        self,
        x: Tensor,
        cond: Tensor,
        cos: Tensor,
        sin: Tensor,
        k_cache: Tensor,
        v_cache: Tensor,
        pos: Tensor,
        mask: Tensor,
    ) -> Tensor:
        """One step x [B, 1, D] at per-row positions pos [B]; writes its key/value into the
        caches at pos and attends to every cached step <= pos (mask [B, 1, 1, context])."""
        q, k, v = self._qkv(x)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        rows = torch.arange(x.shape[0], device=x.device)
        k_cache[rows, :, pos] = k[:, :, 0]
        v_cache[rows, :, pos] = v[:, :, 0]
        a = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask)
        x = x + self.out(a.transpose(1, 2).reshape(x.shape)) + cond
        return x + self.mlp(self.ln2(x))


class TokenLM(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        c = self.config = config
        self.embed = nn.ModuleList(
            nn.Embedding(c.codebook_size + 1, c.dim) for _ in range(c.n_codebooks)
        )
        self.cond = ConditionEncoder(c.dim, c.vocab)
        self.cond_in = nn.Linear(c.dim, c.dim)
        self.cond_layers = nn.Linear(c.dim, c.layers * c.dim)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_out = nn.LayerNorm(c.dim)
        self.heads = nn.Linear(c.dim, c.n_codebooks * c.codebook_size, bias=False)
        cos, sin = rotary_tables(c.context, c.dim // c.heads)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    @property
    def pattern(self) -> DelayPattern:
        return self.config.pattern

    def _inputs(self, tokens: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """tokens [B, K, T], cond [B, T, D] -> (embedded input [B, T, D], per-layer cond)."""
        x = sum(emb(tokens[:, k]) for k, emb in enumerate(self.embed))
        x = x + self.cond_in(cond)
        per_layer = self.cond_layers(cond).unflatten(-1, (self.config.layers, self.config.dim))
        return x, per_layer

    def _logits(self, x: Tensor) -> Tensor:
        c = self.config
        return self.heads(self.ln_out(x)).unflatten(-1, (c.n_codebooks, c.codebook_size))

    def forward(self, tokens: Tensor, cond: Tensor, return_cache: bool = False):
        """Whole-sequence pass. tokens [B, K, T]: the input steps (each step's tokens are the
        previous step's codes); cond [B, T, D] from :meth:`encode_condition`. Returns logits
        [B, T, K, card] for the codes of each step (and a filled KVCache if asked)."""
        t = tokens.shape[-1]
        x, keys, values = self._trunk(tokens, cond)
        logits = self._logits(x)
        if not return_cache:
            return logits
        cache = KVCache.empty(self.config, tokens.shape[0], tokens.device)
        for i in range(len(self.blocks)):
            cache.k[i][:, :, :t] = keys[i]
            cache.v[i][:, :, :t] = values[i]
        cache.lengths[:] = t
        return logits, cache

    def features(self, tokens: Tensor, cond: Tensor) -> Tensor:
        """The trunk's last hidden states [B, T, D] (after the output LayerNorm, before the
        heads) for a whole sequence, as :meth:`forward` computes them: what the critic reads."""
        return self.ln_out(self._trunk(tokens, cond)[0])

    def _trunk(self, tokens: Tensor, cond: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Causal pass of the blocks: (hidden states [B, T, D], per-layer keys, values)."""
        t = tokens.shape[-1]
        if t > self.config.context:
            raise ValueError(f"{t} steps exceed the context of {self.config.context}")
        x, per_layer = self._inputs(tokens, cond)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, per_layer[:, :, i], cos, sin)
            keys.append(k)
            values.append(v)
        return x, keys, values

    def step(self, tokens: Tensor, cond: Tensor, cache: KVCache) -> Tensor:
        """One step for a batch of independent streams: tokens [B, K] (each row's previous
        codes), cond [B, D]. Appends to each row's cache and returns logits [B, K, card]."""
        pos = cache.lengths
        if int(pos.max()) >= self.config.context:
            raise ValueError("a KV cache is full: slide the window first")
        x, per_layer = self._inputs(tokens[:, :, None], cond[:, None])
        cos, sin = self.rope_cos[pos][:, None, None], self.rope_sin[pos][:, None, None]
        span = torch.arange(self.config.context, device=tokens.device)
        mask = (span[None, :] <= pos[:, None])[:, None, None]
        for i, block in enumerate(self.blocks):
            x = block.step(x, per_layer[:, :, i], cos, sin, cache.k[i], cache.v[i], pos, mask)
        cache.lengths = pos + 1
        return self._logits(x)[:, 0]

    def encode_condition(self, features: dict[str, Tensor]) -> Tensor:
        return self.cond(features)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        save_fp16(self, path, FILE_FORMAT, asdict(self.config), extra or {})

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> TokenLM:
        config, state, extra = load_fp16(path, FILE_FORMAT, map_location)
        model = cls(LMConfig(**config))
        model.load_state_dict(state)
        model.extra = extra
        return model.to(map_location).eval()
