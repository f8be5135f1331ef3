"""Media storage is chosen by CHORUS_STORAGE: the local filesystem by default, an S3-compatible
bucket through django-storages when asked. Each case loads the settings in a fresh process, as a
deployment would, with only the environment changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "import json, django; from django.conf import settings; django.setup(); "
    "from django.core.files.storage import storages; "
    "print(json.dumps({'config': settings.STORAGES['default'], "
    "'class': type(storages['default']).__name__}))"
)


def load_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_S3")}
    clean.pop("CHORUS_STORAGE", None)
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "CHORUS_VAR_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_media_stay_on_the_filesystem_by_default(tmp_path):
    result = load_settings(tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["class"] == "FileSystemStorage"


def test_an_s3_bucket_is_configured_from_the_environment(tmp_path):
    pytest.importorskip("storages", reason="django-storages is in the `deploy` extra")
    result = load_settings(
        tmp_path,
        CHORUS_STORAGE="s3",
        CHORUS_S3_BUCKET="chorus-test-media",
        CHORUS_S3_ENDPOINT_URL="http://127.0.0.1:9000",
        CHORUS_S3_REGION="eu-west-1",
    )

    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.splitlines()[-1])
    assert shown["class"] == "S3Storage"
    options = shown["config"]["OPTIONS"]
    assert options["bucket_name"] == "chorus-test-media"
    assert options["endpoint_url"] == "http://127.0.0.1:9000"
    assert options["region_name"] == "eu-west-1"
    assert options["file_overwrite"] is False  # as on the filesystem
    assert options["default_acl"] is None  # never public by default


def test_an_unknown_storage_refuses_to_start(tmp_path):
    result = load_settings(tmp_path, CHORUS_STORAGE="ftp")

    assert result.returncode != 0
    assert "CHORUS_STORAGE is filesystem or s3" in result.stderr
