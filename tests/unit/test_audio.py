"""Audio files for songs: waveform peaks, and encoding to and from WAV, FLAC and Ogg Opus."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from webapp.songs.audio import FORMATS, compute_peaks, decode, encode


def tone(hz: float = 440.0, seconds: float = 1.0, rate: int = 24_000, level: float = 0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def loudest_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[np.argmax(spectrum)])


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))


# --- Peaks -----------------------------------------------------------------------------------


def test_peaks_are_the_loudest_sample_of_each_bucket():
    pcm = np.array([0.0, 0.5, -0.8, 0.1, 0.2, -0.3], dtype=np.float32)

    assert compute_peaks(pcm, 3) == [0.5, 0.8, 0.3]


def test_there_are_as_many_peaks_as_asked():
    assert len(compute_peaks(tone(seconds=10), 800)) == 800


def test_a_short_sound_has_one_peak_per_sample():
    assert compute_peaks(np.array([0.1, -0.2], dtype=np.float32), 800) == [0.1, 0.2]


def test_silence_has_no_peaks():
    assert compute_peaks(np.array([], dtype=np.float32), 800) == []


def test_peaks_are_clipped_and_rounded_for_drawing():
    pcm = np.array([1.7, -0.123456, 0.0004], dtype=np.float64)

    assert compute_peaks(pcm, 3) == [1.0, 0.123, 0.0]


def test_peaks_follow_the_loudness_of_the_sound():
    pcm = np.concatenate([tone(level=0.1), tone(level=0.9)])

    peaks = compute_peaks(pcm, 4)

    assert peaks[0] == peaks[1] == pytest.approx(0.1, abs=0.001)
    assert peaks[2] == peaks[3] == pytest.approx(0.9, abs=0.001)


# --- Encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wav", "flac"])
def test_lossless_formats_round_trip_to_16_bit_precision(name):
    pcm = tone()

    decoded, rate = decode(encode(pcm, 24_000, FORMATS[name]))

    assert rate == 24_000
    assert decoded.dtype == np.float32
    assert len(decoded) == len(pcm)
    assert np.abs(decoded - pcm).max() < 2 / 32768


def test_opus_round_trips_to_the_same_sound():
    pcm = tone(seconds=2)

    decoded, rate = decode(encode(pcm, 24_000, FORMATS["opus"]))

    assert rate == 24_000  # an Opus rate already: kept
    assert len(decoded) == len(pcm)
    assert np.corrcoef(decoded, pcm)[0, 1] > 0.95
    assert rms(decoded) == pytest.approx(rms(pcm), rel=0.05)


@pytest.mark.parametrize("rate", [32_000, 44_100, 22_050])
def test_opus_resamples_other_rates_to_48_khz_at_the_same_pitch(rate):
    pcm = tone(hz=440.0, seconds=2, rate=rate)

    decoded, decoded_rate = decode(encode(pcm, rate, FORMATS["opus"]))

    assert decoded_rate == 48_000
    assert len(decoded) / decoded_rate == pytest.approx(2.0, abs=0.01)
    assert loudest_hz(decoded, decoded_rate) == pytest.approx(440.0, abs=2.0)
    assert rms(decoded) == pytest.approx(rms(pcm), rel=0.05)


@pytest.mark.parametrize(("name", "sf_format"), [("wav", "WAV"), ("flac", "FLAC"), ("opus", "OGG")])
def test_each_format_is_the_container_its_name_says(name, sf_format):
    info = sf.info(io.BytesIO(encode(tone(), 24_000, FORMATS[name])))

    assert info.format == sf_format
    assert info.subtype == FORMATS[name].sf_subtype
    assert info.channels == 1


def test_sound_beyond_full_scale_is_clipped_not_wrapped():
    pcm = np.array([2.0, -3.0, 0.5] * 100, dtype=np.float64)

    decoded, _ = decode(encode(pcm, 24_000, FORMATS["wav"]))

    assert decoded.max() == pytest.approx(1.0, abs=1e-4)
    assert decoded.min() == pytest.approx(-1.0, abs=1e-4)
    assert decoded[2] == pytest.approx(0.5, abs=1e-4)


def test_stereo_files_decode_to_mono():
    left, right = tone(level=0.4), np.zeros(24_000, dtype=np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([left, right], axis=1), 24_000, format="WAV", subtype="FLOAT")

    decoded, _ = decode(buffer.getvalue())

    assert decoded.ndim == 1
    assert np.allclose(decoded, left / 2, atol=1e-6)


def test_the_formats_offered_for_download():
    assert {name: fmt.content_type for name, fmt in FORMATS.items()} == {
        "wav": "audio/wav",
        "flac": "audio/flac",
        "opus": "audio/ogg",
    }
    assert all(fmt.extension == name for name, fmt in FORMATS.items())
