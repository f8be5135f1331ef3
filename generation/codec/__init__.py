"""Chorus neural audio codec: 24 kHz mono <-> 25 Hz frames of K 10-bit codes (2.0 kbps at K=8).

    from generation.codec import Codec
    codec = Codec.load("var/checkpoints/codec/codec.pt")
    codes = codec.encode(wave)            # [B, T] float -> [B, K, F] long
    wave = codec.decode(codes)            # [B, K, F] -> [B, F * 960]
    state = codec.init_stream(batch_size)
    pcm, state = codec.decode_stream(codes_chunk, state)

See docs/codec.md for the design, the bitrate arithmetic and the measured numbers.
"""

from pathlib import Path

from generation.codec.model import Codec, CodecConfig, CodecOutput, StreamState
from generation.codec.quantizer import codebook_usage

# The shipped default, trained by `python -m generation.train codec` (model card:
# docs/models/codec-small-v1.md). Replace it only with a retrain that is clearly better.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "codec-small-v1.pt"

__all__ = [
    "DEFAULT_CHECKPOINT",
    "Codec",
    "CodecConfig",
    "CodecOutput",
    "StreamState",
    "codebook_usage",
]
