"""Content-Security-Policy: what a page of ours may load and run (docs/security.md).

Django 5.2 has no built-in CSP, and the policy is small enough not to need a package: every
script of ours is a file under /static/ (the Vite build), styles are files too, audio and the
websockets come from this host. So the policy is `'self'` for nearly everything; what a cross-site
scripting bug could inject (an inline script, a script from elsewhere, a form posting elsewhere,
a <base> tag) is refused by the browser.

The exceptions, each deliberate:

- Inline event handlers in our templates (`onsubmit="return confirm(...)"`) are allowed by their
  exact hash ('unsafe-hashes'), not wholesale. A new one must be added to INLINE_HANDLERS;
  tests/security/test_headers.py fails until it is.
- A page that may be framed (`@xframe_options_exempt`: the OBS overlay, which is read-only)
  gets `frame-ancestors *`; every other page `frame-ancestors 'none'`, as X-Frame-Options: DENY.
- Style attributes ('unsafe-inline' in style-src-attr only, never in style elements or
  scripts): the front end builds its ballot bars with a `style` attribute
  (frontend/src/dom.ts `h()`); setting `el.style` instead would let this go.
- DRF's browsable API pages carry an inline <style> element: they may have inline styles.
- The API's Swagger UI and ReDoc pages (drf-spectacular's templates run inline scripts) and,
  with DEBUG on, Django's own error pages get no policy header.
"""

from __future__ import annotations

import base64
import hashlib

from django.conf import settings

# The inline event handlers of webapp/templates, verbatim.
INLINE_HANDLERS = (
    "return confirm('Delete this song?')",
    "this.select()",
)
# Pages whose templates are a package's and run inline scripts.
UNPOLICED_URL_NAMES = frozenset({"api-docs", "api-redoc"})


def source_hash(text: str) -> str:
    """A CSP hash source for an inline script or handler."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def policy(*, host: str, frameable: bool, inline_styles: bool = False) -> str:
    """The policy for a page served to `host` (the websocket origin is the page's own)."""
    scripts = " ".join(["'self'", "'unsafe-hashes'", *map(source_hash, INLINE_HANDLERS)])
    directives = {
        "default-src": "'self'",
        "script-src": scripts,
        "style-src": "'self' 'unsafe-inline'" if inline_styles else "'self'",
        "style-src-attr": "'unsafe-inline'",
        "img-src": "'self' data:",  # the favicon is a data: URL
        "media-src": "'self' blob:",
        # 'self' covers ws: and wss: to this host in current browsers; older Safari wants them named
        "connect-src": f"'self' ws://{host} wss://{host}",
        "font-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "*" if frameable else "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header to HTML answers (CHORUS_CSP=0 turns it off)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not settings.CSP_ENABLED or "Content-Security-Policy" in response:
            return response
        if not response.get("Content-Type", "").startswith("text/html"):
            return response  # JSON, audio, metrics: nothing there runs in a browser
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name in UNPOLICED_URL_NAMES:
            return response
        if settings.DEBUG and response.status_code >= 400:
            return response  # Django's technical error pages are inline scripts and styles
        frameable = getattr(response, "xframe_options_exempt", False)
        renderer = getattr(response, "accepted_renderer", None)
        browsable_api = getattr(renderer, "format", None) == "api"
        response["Content-Security-Policy"] = policy(
            host=request.get_host(), frameable=frameable, inline_styles=browsable_api
        )
        return response
