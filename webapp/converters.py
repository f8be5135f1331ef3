"""Path converters that only match what the thing can be, so junk (a NUL byte, a slash, 10 kB of
text) never reaches a database lookup: it simply matches no route and is a 404."""

from django.urls import register_converter


class ShareTokenConverter:
    regex = r"[A-Za-z0-9_-]{8,64}"  # secrets.token_urlsafe output

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class UsernameConverter:
    regex = r"[\w.@+-]{1,150}"  # Django's username characters

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ShareTokenConverter, "share_token")
register_converter(UsernameConverter, "username")
