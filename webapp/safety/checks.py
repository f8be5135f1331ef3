"""The prompt filter as services use it: a check that raises a ServiceError to refuse.

Every place that takes free text from a person calls one of these inside its own clean function
(songs: prompt, title, style tags; rooms: title, anchor prompt, proposals), so the API answers
400 `prompt_refused`, forms show a field error and the room websocket an `error` frame, all with
the filter's sentence.
"""

from __future__ import annotations

from collections.abc import Iterable

from webapp.errors import ServiceError
from webapp.safety.prompt_filter import Verdict, prompt_check, prompt_check_all

PROMPT_REFUSED = "prompt_refused"


class PromptRefused(ServiceError):
    """The prompt filter refused a text; `reason` is its reason code (slur, artist_name,
    profanity) for logs and metrics."""

    def __init__(self, verdict: Verdict, *, field: str) -> None:
        super().__init__(verdict.message, code=PROMPT_REFUSED, field=field)
        self.reason = verdict.reason


def text_check_allowed(text: str, *, field: str) -> None:
    """Refuse `text` (for the form or API field `field`) if the prompt filter does."""
    verdict = prompt_check(text)
    if not verdict.allowed:
        raise PromptRefused(verdict, field=field)


def texts_check_allowed(texts: Iterable[str], *, field: str) -> None:
    """`text_check_allowed` for several short texts that travel together (style tags): each,
    and all of them joined, so a name split across two tags is found too."""
    verdict = prompt_check_all(texts)
    if not verdict.allowed:
        raise PromptRefused(verdict, field=field)
