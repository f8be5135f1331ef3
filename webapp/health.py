"""Readiness: whether this web process can serve, checked against what it depends on.

`/healthz` (webapp/urls.py) says only that the process answers: a liveness probe, which must not
fail because PostgreSQL or Redis is down (restarting the web server would not bring them back).
`/readyz` checks the database and the cache (Redis in service mode, which also carries the
channel layer and rate limits): a load balancer or Kubernetes stops sending traffic to a process
that answers 503 here, and sends it again once the checks pass.
"""

from __future__ import annotations

import logging
import secrets

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

CACHE_KEY = "readyz"


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    nonce = secrets.token_hex(8)
    cache.set(CACHE_KEY, nonce, timeout=10)
    if cache.get(CACHE_KEY) != nonce:
        raise RuntimeError("the cache did not return what was just written")


CHECKS = {"database": _check_database, "cache": _check_cache}


def readyz(request):
    """`GET /readyz`: 200 with every check "ok", or 503 naming what failed (the error's type
    only: details go to the log, not to whoever asks)."""
    checks = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:
            logger.warning("readyz: %s check failed", name, exc_info=True)
            checks[name] = f"error: {type(exc).__name__}"
        else:
            checks[name] = "ok"
    ok = all(result == "ok" for result in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
