"""Service mode's HTTP security: Django's deploy checklist, the headers and cookies a browser
gets, the Content-Security-Policy, and CSRF (docs/security.md).

The service-mode tests run the real settings module in a subprocess with service-mode
environment variables (the test process itself runs webapp.settings_test, whichever mode). The
database and Redis addresses there point at nothing: neither the checks nor the pages asked for
touch them, and a test that did would fail loudly rather than pass by accident.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.middleware.csrf import get_token
from django.test import Client

from webapp import csp

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "webapp" / "templates"


def service_mode_env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    """What a production web process has: no DEBUG, a real secret, PostgreSQL and Redis.
    `extra` adds variables, or takes one away with None."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CHORUS_")) and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/nothing",
        REDIS_URL="redis://127.0.0.1:1/0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        CHORUS_VAR_DIR=str(tmp_path),
    )
    env.update(extra)
    return {key: value for key, value in env.items() if value is not None}


def manage(tmp_path: Path, *args: str, **extra: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=service_mode_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- Django's deploy checklist --------------------------------------------------------------


def test_the_deploy_checklist_is_clean_in_service_mode(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    # Clean, not silenced: nothing is on SILENCED_SYSTEM_CHECKS.
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_the_deploy_checklist_catches_service_mode_with_debug_on(tmp_path):
    """The check above can fail: with DEBUG on, service mode drops its security settings."""
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG="1")

    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W018"):
        assert warning in result.stderr + result.stdout


def test_service_mode_refuses_to_start_without_a_secret_from_the_environment(tmp_path):
    result = manage(tmp_path, "check", DJANGO_SECRET_KEY=None)

    assert result.returncode != 0
    assert "Service mode needs DJANGO_SECRET_KEY" in result.stderr


# --- What a browser gets in service mode -------------------------------------------------------

# Run inside the service-mode process: a few requests through Django's test client, the answers'
# headers and cookies printed as JSON. Static file names are served as they are (the manifest
# storage needs `collectstatic`, a deploy step this is not about).
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client, override_settings

plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
    client = Client()
    via_tls = {"X-Forwarded-Proto": "https", "Host": "chorus.example.com"}
    page = client.get("/accounts/login/", headers=via_tls)
    plain_http = client.get("/accounts/login/", headers={"Host": "chorus.example.com"})
    probe = client.get("/healthz", headers={"Host": "chorus.example.com"})
print(json.dumps({
    "page": {"status": page.status_code, "headers": dict(page.headers),
             "cookies": {name: dict(c) for name, c in page.cookies.items()}},
    "plain_http": {"status": plain_http.status_code, "location": plain_http.get("Location")},
    "probe": {"status": probe.status_code},
}))
"""


@pytest.fixture(scope="module")
def service_mode_answers(tmp_path_factory) -> dict:
    env = service_mode_env(
        tmp_path_factory.mktemp("service-mode"), DJANGO_ALLOWED_HOSTS="chorus.example.com"
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_service_mode_pages_carry_the_security_headers(service_mode_answers):
    page = service_mode_answers["page"]
    headers = page["headers"]

    assert page["status"] == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_service_mode_cookies_are_secure_and_out_of_reach_of_scripts(service_mode_answers):
    csrf_cookie = service_mode_answers["page"]["cookies"]["csrftoken"]

    assert csrf_cookie["secure"] is True
    assert csrf_cookie["httponly"] is True
    assert csrf_cookie["samesite"] == "Lax"


def test_plain_http_is_redirected_to_https_except_for_probes(service_mode_answers):
    assert service_mode_answers["plain_http"] == {
        "status": 301,
        "location": "https://chorus.example.com/accounts/login/",
    }
    assert service_mode_answers["probe"]["status"] == 200


def test_the_session_cookie_is_secure_in_service_mode(tmp_path):
    # The session cookie is set only on sign-in, which needs the database: read the setting.
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SECURE_SSL_REDIRECT)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=service_mode_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    assert result.stdout.split() == ["True", "True", "True"]


# --- Content-Security-Policy -------------------------------------------------------------------


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.mark.django_db
def test_pages_get_a_policy_that_allows_only_this_sites_scripts(alice_browser):
    response = alice_browser.get("/")

    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'self'" and policy["form-action"] == "'self'"
    scripts = policy["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert scripts[:2] == ["'self'", "'unsafe-hashes'"]
    assert policy["connect-src"] == "'self' ws://testserver wss://testserver"
    # Style elements only from files; style attributes (the ballot bars) inline. webapp/csp.py.
    assert policy["style-src"] == "'self'"
    assert policy["style-src-attr"] == "'unsafe-inline'"


@pytest.mark.django_db
def test_the_browsable_api_may_have_inline_styles_but_never_inline_scripts(alice_browser):
    response = alice_browser.get("/api/v1/feed/", headers={"Accept": "text/html"})

    policy = directives(response["Content-Security-Policy"])
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert "'unsafe-inline'" not in policy["script-src"]


@pytest.mark.django_db
def test_only_the_overlay_may_be_framed(make_room, alice, alice_browser):
    room = make_room(alice, visibility="public")

    page = alice_browser.get(f"/rooms/{room.pk}/")
    overlay = alice_browser.get(f"/rooms/{room.pk}/overlay/")

    assert page["X-Frame-Options"] == "DENY"
    assert directives(page["Content-Security-Policy"])["frame-ancestors"] == "'none'"
    assert "X-Frame-Options" not in overlay
    assert directives(overlay["Content-Security-Policy"])["frame-ancestors"] == "*"


@pytest.mark.django_db
def test_json_answers_and_the_api_docs_carry_no_policy(anon):
    assert "Content-Security-Policy" not in anon.get("/api/v1/feed/")
    # drf-spectacular's Swagger UI runs an inline script: that page is left unpoliced.
    docs = Client().get("/api/v1/docs/")
    assert docs.status_code == 200 and "Content-Security-Policy" not in docs


def test_every_inline_handler_in_the_templates_is_allowed_by_its_hash():
    handlers = set()
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        handlers |= set(re.findall(r'\son[a-z]+="([^"]*)"', text))
        # Executable inline scripts would need a hash of their own: only data blocks and files.
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template, tag)

    assert handlers == set(csp.INLINE_HANDLERS), (
        "webapp/csp.py INLINE_HANDLERS must list exactly the templates' inline handlers"
    )


def test_a_handler_hash_is_the_one_browsers_compute():
    # Computed apart: printf '%s' 'this.select()' | openssl dgst -sha256 -binary | base64
    assert (
        csp.source_hash("this.select()") == "'sha256-biFQTroSCI3Z5BmsMGyEE2jFZdwjjG1Oe7JLytgH6jM='"
    )


# --- CSRF ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_signed_in_browser_cannot_write_through_the_api_without_the_csrf_token(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    refused = browser.post("/api/v1/feedback/", {"events": []}, content_type="application/json")

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]


@pytest.mark.django_db
def test_a_page_form_posted_without_the_csrf_token_is_refused(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    refused = browser.post("/rooms/new/", {"title": "x", "anchor_prompt": "y"})
    page = browser.get("/rooms/new/")
    token = get_token(page.wsgi_request)
    accepted = browser.post("/rooms/new/", {"title": "", "csrfmiddlewaretoken": token})

    assert refused.status_code == 403
    assert accepted.status_code == 400  # past CSRF: the form itself answers (empty title)
