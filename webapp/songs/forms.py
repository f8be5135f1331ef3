from django import forms

from generation.interface import MAX_SONG_SECONDS, MIN_SONG_SECONDS
from webapp.songs.models import MAX_GUIDANCE, MAX_PROMPT_CHARS, MIN_GUIDANCE, Song


class SongCreateForm(forms.Form):
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

    def clean_style_tags(self) -> list[str]:
        return [t for t in (s.strip() for s in self.cleaned_data["style_tags"].split(",")) if t]
