"""The dependency audit gate (.ci/pip_audit.py): it fails on a known vulnerability, and never
takes a service that audited nothing for a clean bill. pip-audit itself is replaced by canned
reports here: what is under test is how the gate reads them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gate(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("pip_audit_gate", ROOT / ".ci" / "pip_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RECORD", tmp_path / "pip-audit.txt")
    monkeypatch.setattr(module, "IGNORE_FILE", tmp_path / "ignore.txt")
    module.IGNORE_FILE.write_text("# nothing ignored\n")
    monkeypatch.delenv("CHORUS_AUDIT_REQUIRED", raising=False)
    return module


def answers(monkeypatch, gate, by_service: dict[str, dict | str]) -> list[list[str]]:
    """pip-audit answers each service with a report (JSON) or fails with a message."""
    calls = []

    def run(command, **_):
        calls.append(command)
        answer = by_service[command[command.index("--vulnerability-service") + 1]]
        if isinstance(answer, str):
            return subprocess.CompletedProcess(command, 1, "", f"Traceback...\n{answer}\n")
        return subprocess.CompletedProcess(command, 0, json.dumps(answer), "")

    monkeypatch.setattr(gate.subprocess, "run", run)
    return calls


CLEAN = {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": []}], "fixes": []}
VULNERABLE = {
    "dependencies": [
        {
            "name": "django",
            "version": "5.2.19",
            "vulns": [{"id": "PYSEC-0000-1", "fix_versions": ["5.2.20"], "aliases": []}],
        }
    ],
    "fixes": [],
}
NOTHING_AUDITED = {
    "dependencies": [{"name": "django", "skip_reason": "Dependency not found on PyPI"}],
    "fixes": [],
}


def test_a_known_vulnerability_fails_the_gate(monkeypatch, gate, capsys):
    answers(monkeypatch, gate, {"pypi": VULNERABLE})

    assert gate.main() == 1
    assert "django 5.2.19: PYSEC-0000-1 (5.2.20)" in capsys.readouterr().out


def test_a_clean_audit_passes(monkeypatch, gate):
    answers(monkeypatch, gate, {"pypi": CLEAN})

    assert gate.main() == 0
    assert not gate.RECORD.exists()


def test_a_service_that_audited_nothing_is_not_trusted_and_osv_is_asked(monkeypatch, gate):
    calls = answers(monkeypatch, gate, {"pypi": NOTHING_AUDITED, "osv": VULNERABLE})

    assert gate.main() == 1
    assert [c[c.index("--vulnerability-service") + 1] for c in calls] == ["pypi", "osv"]


def test_no_reachable_service_is_said_loudly_and_recorded(monkeypatch, gate, capsys):
    answers(monkeypatch, gate, {"pypi": NOTHING_AUDITED, "osv": "ConnectionError: no DNS"})

    assert gate.main() == 0
    warning = capsys.readouterr().err
    assert "NOT audited" in warning and "ConnectionError: no DNS" in warning
    assert "NOT audited" in gate.RECORD.read_text()

    monkeypatch.setenv("CHORUS_AUDIT_REQUIRED", "1")
    assert gate.main() == 2


def test_ignored_ids_are_passed_on_and_need_a_reason(monkeypatch, gate):
    gate.IGNORE_FILE.write_text("PYSEC-0000-1 only the admin's password reset, which we patch\n")
    calls = answers(monkeypatch, gate, {"pypi": CLEAN})

    assert gate.main() == 0
    assert calls[0][-2:] == ["--ignore-vuln", "PYSEC-0000-1"]

    gate.IGNORE_FILE.write_text("PYSEC-0000-1\n")
    with pytest.raises(SystemExit, match="without a reason"):
        gate.main()
