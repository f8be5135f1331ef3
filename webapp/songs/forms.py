from django import forms

from generation.interface import MAX_SONG_SECONDS, MIN_SONG_SECONDS
from webapp.songs import uploads
from webapp.songs.models import MAX_GUIDANCE, MAX_PROMPT_CHARS, MIN_GUIDANCE, Song


class SongCreateForm(forms.Form):
    """The fields of a new song as a person fills them in. Only the shape is checked here;
    song_create checks the rest (the prompt filter, quotas, the reference clip's audio) and its
    refusals come back as errors on these fields."""

    prompt = forms.CharField(
        max_length=MAX_PROMPT_CHARS,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "warm lo-fi beat with soft piano"}),
    )
    duration_s = forms.FloatField(
        label="Duration (seconds)",
        min_value=MIN_SONG_SECONDS,
        max_value=MAX_SONG_SECONDS,
        initial=30,
    )
    style_tags = forms.CharField(
        label="Style tags (comma separated)", required=False, max_length=400
    )
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    guidance = forms.FloatField(
        min_value=MIN_GUIDANCE,
        max_value=MAX_GUIDANCE,
        required=False,
        help_text="Leave empty for the model's recommended guidance.",
    )
    visibility = forms.ChoiceField(choices=Song.Visibility.choices, initial="private")
    reference = forms.FileField(
        label="Influence (reference clip)",
        required=False,
        widget=forms.FileInput(attrs={"accept": "audio/*"}),
        help_text=(
            f"Optional: {uploads.MIN_SECONDS:.0f}-{uploads.MAX_SECONDS:.0f} s of audio whose "
            f"style steers the song (WAV, FLAC, Ogg, MP3 or AIFF; at most "
            f"{uploads.MAX_BYTES // (1024 * 1024)} MB)."
        ),
    )

    def clean_style_tags(self) -> list[str]:
        return [t for t in (s.strip() for s in self.cleaned_data["style_tags"].split(",")) if t]
