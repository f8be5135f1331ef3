"""Chorus neural audio codec: 24 kHz mono <-> 25 Hz frames of K 10-bit codes (2.0 kbps at K=8).

    from generation.codec import Codec
    codec = Codec.load("var/checkpoints/codec/codec.pt")
    codes = codec.encode(wave)            # [B, T] float -> [B, K, F] long
    wave = codec.decode(codes)            # [B, K, F] -> [B, F * 960]
    state = codec.init_stream(batch_size)
    pcm, state = codec.decode_stream(codes_chunk, state)

See docs/codec.md for the design, the bitrate arithmetic and the measured numbers.
"""

from generation.codec.model import Codec, CodecConfig, CodecOutput, StreamState
from generation.codec.quantizer import codebook_usage

__all__ = ["Codec", "CodecConfig", "CodecOutput", "StreamState", "codebook_usage"]
