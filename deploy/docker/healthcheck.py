"""Container health checks for compose.yaml (Kubernetes uses its own probes, deploy/k8s/).

    python deploy/docker/healthcheck.py http http://127.0.0.1:8000/readyz
    python deploy/docker/healthcheck.py broker     # the Celery broker answers PING

Exit status 0 when healthy, 1 otherwise, with one line saying why. Standard library and the
`redis` client only: a check must cost little more than starting Python.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def check_http(url: str) -> str | None:
    if not url.startswith(("http://127.0.0.1", "http://localhost")):
        return f"only local URLs are checked, not {url}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local http only)
            return None if 200 <= response.status < 300 else f"{url}: HTTP {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def check_broker() -> str | None:
    import redis

    url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
    if not url:
        return "neither CELERY_BROKER_URL nor REDIS_URL is set"
    try:
        redis.Redis.from_url(url, socket_timeout=5).ping()
    except redis.RedisError as exc:
        return f"broker: {exc}"
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["http"] and len(argv) == 2:
        problem = check_http(argv[1])
    elif argv == ["broker"]:
        problem = check_broker()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
