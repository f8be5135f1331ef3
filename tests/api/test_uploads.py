"""Reference-audio uploads ("Influence"): validated by decoding, stored as our own FLAC, passed to
the generator, deleted with the song; and every bad upload (truncated, wrong type, absurd
header, too long, too large) is a clean 4xx that leaves no file behind, neither in MEDIA_ROOT
nor in the upload temp folder. Hand-made cases first, then hypothesis mutating real headers."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils.datastructures import MultiValueDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIRequestFactory, force_authenticate

from generation.interface import RenderedSong, SongRequest, register_song_generator
from generation.placeholder import PlaceholderToneGenerator
from webapp.errors import ServiceError
from webapp.songs import services as song_services
from webapp.songs import uploads
from webapp.songs.api import SongListCreateApi
from webapp.songs.models import Song

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 64


def clip(
    seconds: float = 3.0,
    *,
    rate: int = 16_000,
    channels: int = 1,
    fmt: str = "WAV",
    subtype: str | None = None,
) -> bytes:
    """A tone of `seconds` as an audio file in memory, written a second at a time (libsndfile's
    Vorbis encoder crashes on one very large write)."""
    out = io.BytesIO()
    with soundfile.SoundFile(
        out, "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype
    ) as file:
        for start in range(0, int(seconds * rate), rate):
            t = np.arange(start, min(start + rate, int(seconds * rate))) / rate
            tone = 0.2 * np.sin(2 * np.pi * 440 * t)
            file.write(np.stack([tone] * channels, axis=1))
    return out.getvalue()


def wav_header(*, rate: int, channels: int = 1, bits: int = 16, data_bytes: int, payload: bytes):
    """A WAV file whose header says what we like, whatever follows it."""
    block = channels * bits // 8
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
    riff = struct.pack("<I", (36 + len(payload)) & 0xFFFFFFFF)
    return (
        b"RIFF" + riff + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", data_bytes) + payload
    )


def nan_wav() -> bytes:
    out = io.BytesIO()
    samples = np.full(16_000 * 3, np.nan, dtype=np.float32)
    soundfile.write(out, samples, 16_000, format="WAV", subtype="FLOAT")
    return out.getvalue()


def zip_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture
def media(settings, tmp_path) -> Path:
    """MEDIA_ROOT and the upload temp folder in this test's own folders, to be looked into."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    settings.RATELIMIT_ENABLED = False  # many uploads in a row is the point here
    settings.QUOTA_DAILY_SECONDS = 0  # and so is many songs
    return tmp_path


def files_left(media: Path) -> list[str]:
    """Every file in MEDIA_ROOT and the upload temp folder."""
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def upload(data: bytes, name: str = "clip.wav", content_type: str = "audio/wav"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def post_song(api, data: bytes, name: str = "clip.wav", content_type: str = "audio/wav", **form):
    body = {"prompt": "warm pads", "duration_s": 10, **form}
    body["reference"] = upload(data, name, content_type)
    return api.post("/api/v1/songs/", body, format="multipart")


def assert_refused_cleanly(response, media: Path, owner) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["fields"] == {"reference": [error["message"]]}
    assert files_left(media) == []
    assert not Song.objects.filter(owner=owner).exists()


# --- What is accepted, and what is stored ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "info"),
    [
        (clip(3, rate=16_000), "clip.wav", ("WAV", 16_000, 1, 3.0)),
        (clip(5, rate=44_100, channels=2, fmt="FLAC"), "clip.flac", ("FLAC", 44_100, 2, 5.0)),
        (clip(4, rate=48_000, fmt="OGG", subtype="VORBIS"), "clip.ogg", ("Ogg", 48_000, 1, 4.0)),
        (clip(4, rate=48_000, fmt="OGG", subtype="OPUS"), "clip.opus", ("Ogg", 48_000, 1, 4.0)),
        (
            clip(3, rate=44_100, fmt="MP3", subtype="MPEG_LAYER_III"),
            "clip.mp3",
            ("MP3", 44_100, 1, 3.0),
        ),
        (clip(2.5, rate=96_000, fmt="AIFF"), "clip.aiff", ("AIFF", 96_000, 1, 2.5)),
        (clip(60, rate=8_000), "minute.wav", ("WAV", 8_000, 1, 60.0)),
    ],
    ids=["wav", "flac stereo", "ogg vorbis", "ogg opus", "mp3", "aiff 96k", "60 s at 8k"],
)
def test_a_clip_is_decoded_recorded_and_stored_as_flac(alice_api, alice, media, data, name, info):
    response = post_song(alice_api, data, name)

    assert response.status_code == 202, response.content
    song = Song.objects.get(owner=alice)
    fmt, rate, channels, seconds = info
    recorded = song.reference_info
    assert (recorded["format"], recorded["sample_rate"], recorded["channels"]) == info[:3]
    assert recorded["duration_s"] == pytest.approx(seconds, abs=0.1)  # codecs pad a little
    assert recorded["bytes"] == len(data)
    assert response.json()["reference"] == recorded
    stored = Path(song.reference.path)
    assert stored.relative_to(media / "media").as_posix() == (
        f"songs/{song.pk}/reference/reference.flac"
    )
    kept = soundfile.info(str(stored))
    assert (kept.format, kept.samplerate, kept.channels) == ("FLAC", rate, channels)
    assert kept.frames / kept.samplerate == pytest.approx(seconds, abs=0.1)
    # Only the song's own files: the upload and the transcode left nothing in the temp folder.
    assert all(path.startswith(f"media/songs/{song.pk}/") for path in files_left(media))


def test_the_type_comes_from_the_bytes_not_the_name_or_content_type(alice_api, alice, media):
    wav_named_png = post_song(alice_api, clip(3), "photo.png", "image/png")
    png_named_wav = post_song(alice_api, PNG, "clip.wav", "audio/wav")

    assert wav_named_png.status_code == 202
    assert png_named_wav.status_code == 415
    assert png_named_wav.json()["error"]["code"] == "unsupported_audio"
    assert Song.objects.filter(owner=alice).count() == 1


def test_multipart_requests_carry_controls_and_tags_alongside_the_clip(alice_api, alice, media):
    response = post_song(
        alice_api,
        clip(3),
        controls='{"bpm": 96, "mode": "minor"}',
        style_tags=["lo-fi", "rainy"],
    )

    assert response.status_code == 202, response.content
    song = Song.objects.get(owner=alice)
    assert (song.controls["bpm"], song.controls["mode"]) == (96, "minor")
    assert song.style_tags == ["lo-fi", "rainy"]


# --- What is refused (hand-made cases) ------------------------------------------------------------

FLAC = clip(5, rate=22_050, fmt="FLAC")
OGG = clip(5, rate=22_050, fmt="OGG", subtype="VORBIS")
WAV = clip(5, rate=22_050)

REFUSED = {
    # wrong types
    "empty": b"",
    "png": PNG,
    "text": b"this is not audio, it is a text file\n" * 20,
    "zip of a wav": zip_of("clip.wav", WAV),
    "html": b"<!doctype html><title>x</title>" + b"<p>hi</p>" * 100,
    # truncated real files
    "wav header only": WAV[:44],
    "wav cut to half a second": WAV[: 44 + 22_050],
    "flac header only": FLAC[:42],
    "flac cut in its first frame": FLAC[:300],
    "ogg cut in its headers": OGG[:200],
    "ogg cut to a tenth": OGG[: len(OGG) // 10],
    # absurd headers
    "wav claiming 2^31 frames": wav_header(
        rate=16_000, bits=8, data_bytes=2**31, payload=b"\x80" * 800
    ),
    "wav at 0 Hz": wav_header(rate=0, data_bytes=1000, payload=b"\0" * 1000),
    "wav at 10 MHz": wav_header(rate=10_000_000, data_bytes=1000, payload=b"\0" * 1000),
    "wav at 4 kHz": clip(3, rate=4_000),
    "wav at 192 kHz": clip(3, rate=192_000),
    "wav with 2000 channels": wav_header(
        rate=16_000, channels=2000, data_bytes=4000, payload=b"\0" * 4000
    ),
    "wav with 3 channels": clip(3, channels=3),
    "float wav holding NaN": nan_wav(),
    # durations
    "one second": clip(1),
    "61 s of wav at 8 kHz": clip(61, rate=8_000),
    "ten minutes of ogg (small file, long audio)": clip(
        600, rate=8_000, fmt="OGG", subtype="VORBIS"
    ),
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_upload_is_a_clean_4xx_that_leaves_nothing_behind(alice_api, alice, media, data):
    assert len(data) <= uploads.MAX_BYTES  # the size cap is tested on its own below

    response = post_song(alice_api, data)

    assert_refused_cleanly(response, media, alice)


@pytest.mark.parametrize(
    ("data", "status", "code", "words"),
    [
        (b"", 400, "bad_audio", "empty"),
        (PNG, 415, "unsupported_audio", "WAV, FLAC, Ogg, MP3 or AIFF"),
        (clip(1), 400, "bad_audio", "at least 2 s"),
        (clip(61, rate=8_000), 400, "bad_audio", "longer than 60 s"),
        (clip(3, rate=4_000), 400, "bad_audio", "4000 Hz"),
        (clip(3, channels=3), 400, "bad_audio", "3 channels"),
        (WAV[:300], 400, "bad_audio", "at least 2 s"),
    ],
    ids=["empty", "png", "short", "long", "low rate", "channels", "truncated"],
)
def test_each_refusal_says_what_is_wrong(alice_api, alice, media, data, status, code, words):
    response = post_song(alice_api, data)

    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (status, code)
    assert words in error["message"]


def test_the_long_ogg_is_refused_without_decoding_all_of_it(media, monkeypatch):
    """Ten minutes of audio in a small file: decoding stops just past the 60 s limit."""
    decoded = []
    real_read = soundfile.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        block = real_read(self, frames, *args, **kwargs)
        decoded.append(len(block))
        return block

    monkeypatch.setattr(soundfile.SoundFile, "read", counting_read)
    with pytest.raises(ServiceError, match="longer than 60 s"):
        uploads.reference_prepare(
            upload(clip(600, rate=8_000, fmt="OGG", subtype="VORBIS"), "long.ogg")
        )

    assert sum(decoded) <= 60 * 8_000 + uploads.BLOCK_FRAMES
    assert files_left(media) == []


# --- The size cap: refused while streaming --------------------------------------------------------


class CountingStream(io.BytesIO):
    """A request body that counts how much of it the server read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk

    def readline(self, size=-1):
        line = super().readline(size)
        self.taken += len(line)
        return line


def call_create_api(user, body: bytes, content_length: int | None = None):
    """POST /api/v1/songs/ straight to the view, with a body whose reads are counted."""
    from django.core.handlers.wsgi import LimitedStream

    request = APIRequestFactory().generic(
        "POST", "/api/v1/songs/", body, content_type=MULTIPART_CONTENT
    )
    stream = CountingStream(body)
    length = len(body) if content_length is None else content_length
    request.META["CONTENT_LENGTH"] = str(length)
    request._stream = LimitedStream(stream, length)
    force_authenticate(request, user=user)
    response = SongListCreateApi.as_view()(request)
    response.render()
    request.close()  # what the WSGI handler does at the end: closes the uploaded files
    return response, stream


def multipart_with(reference: bytes, prompt: str = "warm pads") -> bytes:
    files = MultiValueDict({"reference": [upload(reference, "big.wav")]})
    return encode_multipart(BOUNDARY, {"prompt": prompt, "duration_s": "10", **files})


def test_an_upload_over_the_cap_is_refused_and_reading_stops_at_the_cap(alice, media):
    body = multipart_with(WAV + b"\0" * (uploads.MAX_BYTES + 2 * 1024 * 1024))

    response, stream = call_create_api(alice, body)

    assert response.status_code == 413
    assert response.data["error"]["code"] == "too_large"
    # The body passes the cap by 2 MB; the server stopped within a read chunk of the cap.
    assert stream.taken <= uploads.MAX_BYTES + uploads.FORM_OVERHEAD_BYTES + 64 * 1024
    assert stream.taken < len(body)
    assert files_left(media) == []
    assert not Song.objects.filter(owner=alice).exists()


def test_a_request_that_says_it_is_too_large_is_refused_unread(alice, media):
    body = multipart_with(WAV)

    response, stream = call_create_api(alice, body, content_length=50 * 1024 * 1024)

    assert response.status_code == 413
    assert stream.taken == 0
    assert files_left(media) == []


def test_the_file_under_the_cap_is_read_whole(alice, media):
    response, stream = call_create_api(alice, multipart_with(WAV))

    assert response.status_code == 202, response.data
    assert stream.taken == len(multipart_with(WAV))


# --- Hypothesis: real headers, mutated ------------------------------------------------------------

SEEDS = {
    "wav": clip(2.5, rate=8_000),
    "flac": clip(2.5, rate=8_000, fmt="FLAC"),
    "ogg": clip(2.5, rate=8_000, fmt="OGG", subtype="VORBIS"),
}


@st.composite
def mutated(draw):
    """A real clip with some of its first 64 bytes (the headers) overwritten, and maybe cut."""
    kind = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[kind])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, 63))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return kind, bytes(data)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_a_mutated_header_is_stored_valid_or_refused_cleanly(media, case):
    """At the service's door (fast): every mutation is either still audio we can read, and
    then the prepared file is a valid FLAC, or a ServiceError with a 4xx; never anything else,
    and nothing is left in the temp folder either way once cleaned up."""
    _, data = case
    try:
        prepared = uploads.reference_prepare(upload(data))
    except ServiceError as refused:
        assert 400 <= refused.status_code < 500 and refused.field == "reference"
    else:
        kept = soundfile.info(prepared.path)
        assert kept.format == "FLAC"
        assert uploads.MIN_SECONDS <= kept.frames / kept.samplerate <= uploads.MAX_SECONDS
        prepared.cleanup()
    assert files_left(media) == []


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_a_mutated_header_through_the_api_is_never_a_5xx(alice_api, alice, media, case):
    before = Song.objects.filter(owner=alice).count()

    response = post_song(alice_api, case[1])

    assert response.status_code in (202, 400, 413, 415), response.content[:300]
    made = Song.objects.filter(owner=alice).count() - before
    assert made == (1 if response.status_code == 202 else 0)
    songs_with_files = {p.split("/")[2] for p in files_left(media) if p.startswith("media/")}
    assert songs_with_files <= {str(pk) for pk in Song.objects.values_list("pk", flat=True)}
    assert not [p for p in files_left(media) if p.startswith("uploads/")]


# --- The page (expert mode) -----------------------------------------------------------------------


def test_the_create_page_takes_a_clip_in_expert_mode(alice_browser, alice, media):
    page = alice_browser.get("/songs/new/").content.decode()
    assert 'enctype="multipart/form-data"' in page and 'name="reference"' in page

    response = alice_browser.post(
        "/songs/new/",
        {
            "prompt": "warm pads",
            "duration_s": 10,
            "visibility": "private",
            "reference": upload(clip(3), "mine.flac"),
        },
    )

    assert response.status_code == 302
    assert Song.objects.get(owner=alice).reference_info["format"] == "WAV"


def test_the_create_page_shows_a_bad_clip_on_its_field_and_opens_expert_mode(
    alice_browser, alice, media
):
    response = alice_browser.post(
        "/songs/new/",
        {
            "prompt": "warm pads",
            "duration_s": 10,
            "visibility": "private",
            "reference": upload(PNG, "clip.wav"),
        },
    )

    assert response.status_code == 415
    assert "WAV, FLAC, Ogg, MP3 or AIFF" in response.context["form"].errors["reference"][0]
    assert response.context["expert"] is True
    assert files_left(media) == []


def test_the_create_page_still_checks_the_csrf_token(alice, media):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    response = browser.post("/songs/new/", {"prompt": "warm pads", "duration_s": 10})

    assert response.status_code == 403
    assert not Song.objects.filter(owner=alice).exists()


# --- Generation and deletion ----------------------------------------------------------------------


class RecordingTone:
    """The placeholder tone, remembering what each request's reference file held when the
    generator read it."""

    model_version = PlaceholderToneGenerator.model_version
    heard: list[dict] = []

    def generate_song(self, request: SongRequest, progress) -> RenderedSong:
        seen = {"path": request.reference_path}
        if request.reference_path:
            info = soundfile.info(request.reference_path)
            seen.update(rate=info.samplerate, seconds=info.frames / info.samplerate)
        RecordingTone.heard.append(seen)
        return PlaceholderToneGenerator().generate_song(request, progress)


register_song_generator("recording-tone-for-uploads", RecordingTone)


def test_the_uploaded_clip_reaches_the_generator(alice_api, alice, media, settings):
    settings.GENERATION_BACKEND = "recording-tone-for-uploads"
    RecordingTone.heard.clear()

    response = post_song(alice_api, clip(4, rate=22_050, fmt="FLAC"), "mine.flac")

    assert response.status_code == 202
    song = Song.objects.get(owner=alice)
    assert song.status == Song.Status.READY  # generated inline, in this test process
    assert RecordingTone.heard == [
        {"path": song.reference.path, "rate": 22_050, "seconds": pytest.approx(4.0, abs=0.01)}
    ]
    # A song without a clip asks for none.
    alice_api.post("/api/v1/songs/", {"prompt": "no clip", "duration_s": 10}, format="json")
    assert RecordingTone.heard[-1] == {"path": None}


def test_remote_storage_gives_the_generator_a_temporary_copy(alice_api, alice, media, monkeypatch):
    post_song(alice_api, clip(3))
    song = Song.objects.get(owner=alice)
    original = Path(song.reference.path).read_bytes()

    def no_local_path(self):
        raise NotImplementedError("remote storage")

    monkeypatch.setattr(type(song.reference), "path", property(no_local_path))
    with uploads.reference_local_path(song) as path:
        assert Path(path).read_bytes() == original
        assert not path.startswith(str(media / "media"))
    assert not Path(path).exists()


def test_deleting_the_song_deletes_its_clip(alice_api, alice, media):
    post_song(alice_api, clip(3))
    song = Song.objects.get(owner=alice)
    assert Path(song.reference.path).exists()

    assert alice_api.delete(f"/api/v1/songs/{song.pk}/").status_code == 204

    assert files_left(media) == []


def test_a_song_that_rolls_back_takes_its_stored_clip_with_it(alice, media, monkeypatch):
    def fail_on_the_reference(self, *args, update_fields=None, **kwargs):
        if update_fields and "reference" in update_fields:
            raise RuntimeError("the database went away")
        return real_save(self, *args, update_fields=update_fields, **kwargs)

    real_save = Song.save
    monkeypatch.setattr(Song, "save", fail_on_the_reference)

    with pytest.raises(RuntimeError):
        song_services.song_create(owner=alice, prompt="warm pads", reference=upload(clip(3)))

    assert files_left(media) == []
    assert not Song.objects.filter(owner=alice).exists()


def test_the_openapi_schema_describes_the_upload(anon):
    schema = json.loads(anon.get("/api/v1/schema/", HTTP_ACCEPT="application/json").content)

    body = schema["paths"]["/api/v1/songs/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    request = schema["components"]["schemas"]["SongCreateRequest"]["properties"]
    assert request["reference"]["format"] == "binary"
    assert "quota" in schema["components"]["schemas"]["Me"]["properties"]
