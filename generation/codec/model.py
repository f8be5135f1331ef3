"""The Chorus codec: 24 kHz mono audio <-> K x 10-bit codes at 25 frames per second.

    wave [B, T] --STFT (hop 240, window 960)--> log|X|, 4 STFT frames stacked per codec frame
                --Linear + causal ConvNeXt blocks (25 Hz)--> latent [B, F, 128]
                --residual VQ, K codebooks of 1024 (8-d each)--> codes [B, K, F]  (K=8: 2.0 kbps)
    codes --sum of projected code vectors--> causal ConvNeXt blocks (25 Hz)
          --Linear--> log-magnitude and phase of 4 STFT frames per codec frame
          --inverse FFT, Hann window, overlap-add (hop 240)--> wave [B, F * 960]

All the network runs at the 25 Hz frame rate, and the waveform is made by an inverse STFT rather
than by upsampling convolutions (Vocos, WavTokenizer), which is what makes it cheap on a CPU. The
head predicts four STFT frames of hop 240 per codec frame instead of one frame of hop 960: the
output layer has the same size either way, but 10 ms time resolution smears attacks far less than
40 ms would, and 960-sample windows (25 Hz bins) resolve pitch like Vocos's 1024 at 24 kHz.

Causality: decoder blocks only look back, and the overlap-add tail is carried in the stream state,
so decoding chunk by chunk gives the same samples as decoding a whole clip, with no added latency.
The encoder looks ahead 720 samples (30 ms: its last STFT window for frame f reaches into frame
f+1, exactly as far as the decoder's last window for frame f does) and is otherwise causal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generation.checkpoint import load_fp16, save_fp16
from generation.codec.quantizer import ResidualVectorQuantizer

FILE_FORMAT = "chorus-codec-v1"


@dataclass
class CodecConfig:
    sample_rate: int = 24000
    hop_length: int = 960  # samples per codec frame: 25 frames/s at 24 kHz
    n_codebooks: int = 8  # 8 -> 2.0 kbps, 12 -> 3.0 kbps
    codebook_size: int = 1024  # a power of two: 10 bits per code
    latent_dim: int = 128  # encoder output / decoder input per frame
    codebook_dim: int = 8  # each level's codebook lives in its own 8-d projection (DAC)
    stft_hop: int = 240  # hop of the analysis STFT and of the inverse-STFT head
    n_fft: int = 960  # window of both; a multiple of stft_hop
    encoder_dim: int = 256
    encoder_layers: int = 4
    decoder_dim: int = 512
    decoder_layers: int = 8
    kernel_size: int = 7  # causal depthwise conv over frames: 6 frames (240 ms) of look-back
    mlp_ratio: float = 3.0
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.5  # restart entries used < half as often as the mean one

    def __post_init__(self) -> None:
        if self.hop_length % self.stft_hop or self.n_fft % self.stft_hop:
            raise ValueError("hop_length and n_fft must be multiples of stft_hop")
        if self.codebook_size & (self.codebook_size - 1):
            raise ValueError("codebook_size must be a power of two")

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def codebook_bits(self) -> int:
        return int(math.log2(self.codebook_size))

    @property
    def bitrate_bps(self) -> float:
        return self.frame_rate * self.n_codebooks * self.codebook_bits

    @property
    def subframes(self) -> int:
        """STFT frames per codec frame."""
        return self.hop_length // self.stft_hop

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @classmethod
    def preset(cls, name: str) -> CodecConfig:
        """Named sizes: 'default' (2.0 kbps), 'hq' (12 codebooks, 3.0 kbps), 'small' (the
        shipped CPU-trained model's size), 'tiny' (tests)."""
        presets = {
            "default": {},
            "hq": {"n_codebooks": 12},
            # ~4.5M parameters: fits the shipped-model budget beside the LM, trains on a CPU.
            "small": {
                "encoder_dim": 192,
                "encoder_layers": 3,
                "decoder_dim": 256,
                "decoder_layers": 6,
            },
            "tiny": {
                "n_codebooks": 4,
                "codebook_size": 64,
                "latent_dim": 16,
                "codebook_dim": 4,
                "encoder_dim": 32,
                "encoder_layers": 1,
                "decoder_dim": 48,
                "decoder_layers": 2,
            },
        }
        if name not in presets:
            raise ValueError(f"unknown codec preset {name!r} (known: {', '.join(presets)})")
        return cls(**presets[name])


class CausalConvNeXtBlock(nn.Module):
    """ConvNeXt block over frames [B, F, dim]: causal depthwise conv, LayerNorm, MLP, layer scale.

    `history` holds the block's last kernel_size - 1 input frames ([B, k-1, dim]; zeros at the
    start of a clip), so a clip can be processed in chunks with the same result.
    """

    def __init__(self, dim: int, kernel_size: int, mlp_ratio: float, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, int(mlp_ratio * dim))
        self.fc2 = nn.Linear(int(mlp_ratio * dim), dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
        padded = torch.cat([history, x], dim=1)
        h = self.dwconv(padded.transpose(1, 2)).transpose(1, 2)
        h = self.fc2(F.gelu(self.fc1(self.norm(h))))
        return x + self.gamma * h, padded[:, padded.shape[1] - history.shape[1] :]


class CausalStack(nn.Module):
    """A stack of causal ConvNeXt blocks; histories are a list, one entry per block."""

    def __init__(self, dim: int, n_layers: int, kernel_size: int, mlp_ratio: float):
        super().__init__()
        self.kernel_size, self.dim = kernel_size, dim
        self.blocks = nn.ModuleList(
            CausalConvNeXtBlock(dim, kernel_size, mlp_ratio, 1.0 / n_layers)
            for _ in range(n_layers)
        )

    def initial_history(self, batch: int, device: torch.device | None = None) -> list[Tensor]:
        return [
            torch.zeros(batch, self.kernel_size - 1, self.dim, device=device) for _ in self.blocks
        ]

    def forward(self, x: Tensor, history: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        new_history = []
        for block, past in zip(self.blocks, history, strict=True):
            x, past = block(x, past)
            new_history.append(past)
        return x, new_history


class Encoder(nn.Module):
    """wave [B, T] (T a multiple of hop_length) -> latents [B, F, latent_dim]."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.proj_in = nn.Linear(cfg.subframes * cfg.n_bins, cfg.encoder_dim)
        self.norm_in = nn.LayerNorm(cfg.encoder_dim)
        self.stack = CausalStack(
            cfg.encoder_dim, cfg.encoder_layers, cfg.kernel_size, cfg.mlp_ratio
        )
        self.norm_out = nn.LayerNorm(cfg.encoder_dim)
        self.proj_out = nn.Linear(cfg.encoder_dim, cfg.latent_dim)

    def features(self, wave: Tensor) -> Tensor:
        """log(1 + 100 |STFT|) [B, F, S * bins]: a codec frame's S STFT frames side by side.

        STFT frame j covers samples [j*stft_hop, j*stft_hop + n_fft), the same span as the
        decoder's frame j, so the encoder sees what the decoder must draw (30 ms look-ahead).
        """
        cfg = self.cfg
        batch, frames = wave.shape[0], wave.shape[1] // cfg.hop_length
        padded = F.pad(wave, (0, cfg.n_fft - cfg.stft_hop))
        spec = torch.stft(
            padded, cfg.n_fft, cfg.stft_hop, window=self.window, center=False, return_complex=True
        )  # [B, bins, S*F]
        # log(1 + |X| / 0.01): silence is 0 rather than a large constant shared by every frame,
        # which at init made the latents mostly a common offset (and the codebooks collapse).
        log_mag = torch.log1p(spec.abs() * 100.0).transpose(1, 2)
        return log_mag.reshape(batch, frames, cfg.subframes * cfg.n_bins)

    def forward(self, wave: Tensor) -> Tensor:
        x = self.norm_in(self.proj_in(self.features(wave)))
        x, _ = self.stack(x, self.stack.initial_history(x.shape[0], x.device))
        return self.proj_out(self.norm_out(x))


class Decoder(nn.Module):
    """Quantised latents [B, F, latent_dim] -> wave [B, F * hop_length], in chunks if wanted."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.proj_in = nn.Linear(cfg.latent_dim, cfg.decoder_dim)
        self.norm_in = nn.LayerNorm(cfg.decoder_dim)
        self.stack = CausalStack(
            cfg.decoder_dim, cfg.decoder_layers, cfg.kernel_size, cfg.mlp_ratio
        )
        self.norm_out = nn.LayerNorm(cfg.decoder_dim)
        self.head = nn.Linear(cfg.decoder_dim, cfg.subframes * 2 * cfg.n_bins)
        window = torch.hann_window(cfg.n_fft)
        # Overlap-added windows sum to a constant in steady state (2.0 for Hann at 75% overlap).
        envelope = window.reshape(-1, cfg.stft_hop).sum(0)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("envelope", envelope, persistent=False)

    def forward(self, q: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        cfg = self.cfg
        batch, frames, _ = q.shape
        x = self.norm_in(self.proj_in(q))
        x, history = self.stack(x, state.history)
        out = self.head(self.norm_out(x)).reshape(batch, frames * cfg.subframes, 2 * cfg.n_bins)
        log_mag, phase = out.float().chunk(2, dim=-1)
        # A bin of magnitude M makes a sinusoid of amplitude 2M / n_fft: capping M at n_fft keeps
        # exp() from overflowing early in training without limiting loud music (Vocos's cap of
        # 100 would clip a single partial above amplitude 0.2 at this window size).
        mag = torch.exp(log_mag).clamp(max=float(cfg.n_fft))
        spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
        pieces = torch.fft.irfft(spec, n=cfg.n_fft) * self.window  # [B, N, n_fft]
        summed = overlap_add(pieces, cfg.stft_hop)
        summed = summed / self.envelope.repeat(summed.shape[1] // cfg.stft_hop)
        emit = frames * cfg.hop_length
        tail = state.overlap.shape[1]
        summed = torch.cat([summed[:, :tail] + state.overlap, summed[:, tail:]], dim=1)
        return summed[:, :emit], StreamState(history, summed[:, emit:], state.frames + frames)


def overlap_add(pieces: Tensor, hop: int) -> Tensor:
    """Sum frames [B, N, n_fft] placed every `hop` samples -> [B, (N - 1) * hop + n_fft]."""
    batch, n, n_fft = pieces.shape
    r = n_fft // hop
    out = 0
    for i in range(r):
        segment = pieces[:, :, i * hop : (i + 1) * hop].reshape(batch, n * hop)
        out = out + F.pad(segment, (i * hop, (r - 1 - i) * hop))
    return out


@dataclass
class StreamState:
    """What a streaming decode carries from one chunk to the next (plain tensors: picklable).

    history: per decoder block, its last kernel_size - 1 input frames [B, k-1, decoder_dim].
    overlap: overlap-add tail not yet emitted [B, n_fft - stft_hop].
    frames: codec frames decoded so far.
    """

    history: list[Tensor]
    overlap: Tensor
    frames: int = 0


@dataclass
class CodecOutput:
    wave: Tensor  # [B, T'] reconstruction, T' = F * hop_length
    codes: Tensor  # [B, K, F]
    commitment: Tensor  # scalar commitment loss summed over codebooks


class Codec(nn.Module):
    """encode(wave) -> codes, decode(codes) -> wave, and streaming decode with explicit state.

    Shapes mirror the input: wave [B, T] <-> codes [B, K, F], and unbatched wave [T] <-> codes
    [K, F]. T is padded with zeros to F = ceil(T / hop_length) frames; decode returns F * hop
    samples.
    """

    def __init__(self, config: CodecConfig | None = None):
        super().__init__()
        self.config = config or CodecConfig()
        cfg = self.config
        self.encoder = Encoder(cfg)
        self.quantizer = ResidualVectorQuantizer(
            cfg.n_codebooks,
            cfg.codebook_size,
            cfg.latent_dim,
            cfg.codebook_dim,
            cfg.ema_decay,
            cfg.dead_code_threshold,
        )
        self.decoder = Decoder(cfg)

    # What the token LM and the stream session need to know.
    sample_rate = property(lambda self: self.config.sample_rate)
    frame_rate = property(lambda self: self.config.frame_rate)
    hop_length = property(lambda self: self.config.hop_length)
    n_codebooks = property(lambda self: self.config.n_codebooks)
    codebook_size = property(lambda self: self.config.codebook_size)
    codebook_bits = property(lambda self: self.config.codebook_bits)
    bitrate_bps = property(lambda self: self.config.bitrate_bps)

    def pad(self, wave: Tensor) -> Tensor:
        """wave [B, T] zero-padded to a whole number of frames."""
        return F.pad(wave, (0, (-wave.shape[-1]) % self.hop_length))

    def forward(self, wave: Tensor, quantize_rate: float = 1.0) -> CodecOutput:
        """Training pass over wave [B, T]: reconstruction, codes and commitment loss.

        With quantize_rate < 1, each clip of the batch is decoded from its quantised latents with
        that probability and from the unquantised ones otherwise (Mimi trains at 0.5): the decoder
        then learns to read the latents before the codebooks are any good, which keeps the encoder
        from collapsing onto a constant latent early on.
        """
        z = self.encoder(self.pad(wave))
        q, codes, commitment = self.quantizer(z)
        if quantize_rate < 1.0:
            keep = torch.rand(z.shape[0], 1, 1, device=z.device) < quantize_rate
            q = torch.where(keep, q, z)
        recon, _ = self.decoder(q, self.init_stream(wave.shape[0]))
        return CodecOutput(recon, codes, commitment)

    @torch.no_grad()
    def encode(self, wave: Tensor) -> Tensor:
        unbatched = wave.dim() == 1
        wave = wave[None] if unbatched else wave
        codes = self.quantizer.encode(self.encoder(self.pad(wave.to(self._device).float())))
        return codes[0] if unbatched else codes

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        unbatched = codes.dim() == 2
        codes = codes[None] if unbatched else codes
        wave, _ = self.decode_stream(codes, self.init_stream(codes.shape[0]))
        return wave[0] if unbatched else wave

    def init_stream(self, batch_size: int = 1) -> StreamState:
        """State for a fresh stream: silence before the first frame."""
        overlap = torch.zeros(
            batch_size, self.config.n_fft - self.config.stft_hop, device=self._device
        )
        return StreamState(self.decoder.stack.initial_history(batch_size, self._device), overlap)

    @torch.no_grad()
    def decode_stream(self, codes: Tensor, state: StreamState) -> tuple[Tensor, StreamState]:
        """Decode the next chunk codes [B, K, n] -> (pcm [B, n * hop_length], new state).

        Concatenating the chunks' pcm gives decode() of the concatenated codes (to float error).
        """
        return self.decoder(self.quantizer.decode(codes.to(self._device)), state)

    @property
    def _device(self) -> torch.device:
        return self.decoder.head.weight.device

    def save(self, path: str | Path) -> None:
        """One file: fp16 weights and the config as JSON (generation/checkpoint.py)."""
        save_fp16(self, path, FILE_FORMAT, asdict(self.config))

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Codec:
        """A codec saved by save(), with float32 weights, in eval mode."""
        config, state, _ = load_fp16(path, FILE_FORMAT, map_location)
        codec = cls(CodecConfig(**config))
        codec.load_state_dict(state)
        return codec.to(map_location).eval()
