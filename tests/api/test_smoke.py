def test_a_created_song_is_generated_and_ready(a_public_song):
    assert a_public_song.status == "ready"
    assert a_public_song.is_placeholder
    assert a_public_song.audio.name.endswith(".flac")
    assert len(a_public_song.peaks) == 800
