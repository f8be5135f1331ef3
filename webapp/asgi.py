"""ASGI entry point: HTTP and websockets from one server process.

HTTP goes through Django's WSGI handler on a fixed pool of threads (a2wsgi). Our views are
synchronous, and Django's ASGI handler would hop threads about fifteen times per request and open
a database connection per request thread; the pool halves the CPU per request and bounds the
connections to the pool size (docs/benchmarks.md). In front of it, anonymous reads of the public
endpoints are served from memory (webapp/public_cache.py). Websockets go through Channels.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_http = WSGIMiddleware(get_wsgi_application(), workers=settings.HTTP_THREADS)

from collab.conductor import start_in_process_if_embedded  # noqa: E402
from webapp.public_cache import PublicResponseCache  # noqa: E402
from webapp.routing import websocket_urlpatterns  # noqa: E402

# The embedded default conducts its rooms in this process (a daemon thread); service mode runs
# `manage.py conductor` instead (collab/conductor.py).
start_in_process_if_embedded()

application = ProtocolTypeRouter(
    {
        "http": PublicResponseCache(django_http, ttl_s=settings.PUBLIC_CACHE_TTL_S),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
