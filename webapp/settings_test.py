"""Test settings: the real settings (embedded or service mode, from the environment), made fast.

Background tasks run inline (same task functions, no thread), passwords hash cheaply, and media
go to a throwaway folder. Integration tests that need real Celery workers switch TASKS_INPROCESS
off themselves.
"""

import os
import tempfile

from webapp.settings import *  # noqa: F403

# The instant, labelled tone: API tests are about the service, not the model (the real backend
# has its own tests in tests/generation and one end-to-end test in tests/api/test_songs_api.py).
GENERATION_BACKEND = "placeholder"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TASKS_INPROCESS = True
TASKS_INPROCESS_SYNC = True
MEDIA_ROOT = tempfile.mkdtemp(prefix="chorus-test-media-")
# Test runs share one Redis (and may run at once): each gets its own keys.
CACHE_NAMESPACE = f"chorus-test-{os.getpid()}"
CACHES["default"]["KEY_PREFIX"] = CACHE_NAMESPACE  # noqa: F405
DEBUG = False
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP, also in service mode
# Pages render without `collectstatic` (service mode uses the manifest storage in production).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Request threads (a2wsgi's pool, Channels' executor) must not keep connections past a request:
# an open one stops the test database from being dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":  # noqa: F405
    # One test database per run, so two runs on one PostgreSQL server never collide.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"  # noqa: F405
    }
