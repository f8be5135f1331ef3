from rest_framework.throttling import BaseThrottle

from webapp.ratelimit import RateLimited, client_key, ratelimit_check


class ApiRateLimit(BaseThrottle):
    """Applies the `api` rate-limit domain to every API request, keyed by user or address."""

    def allow_request(self, request, view) -> bool:
        decision = ratelimit_check(domain="api", key=client_key(request))
        if not decision.allowed:
            raise RateLimited("api", decision.retry_after_s)
        return True
