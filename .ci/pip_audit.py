"""Known vulnerabilities in the installed dependencies (pip-audit), for CI and `make security`.

Fails (exit 1) when a dependency has a known vulnerability that .ci/pip-audit-ignore.txt does not
list with a reason. pip-audit asks a vulnerability service about every installed package: PyPI's
JSON API first, then OSV. A service that cannot answer is not taken as "no vulnerabilities":

- PyPI answers "not found" for a package when its per-version JSON is missing (a mirror that
  serves only project pages does this), and pip-audit then reports "No known vulnerabilities"
  having audited nothing. So the packages actually audited are counted; none means unusable.
- OSV may be unreachable altogether (no DNS, no route).

When no service can audit, the script says so in a banner, writes the reason to
var/security/pip-audit.txt, and exits 0: a network it cannot reach is not a vulnerability in the
code. Set CHORUS_AUDIT_REQUIRED=1 to make that exit 2 instead, where the network is known good.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORE_FILE = ROOT / ".ci" / "pip-audit-ignore.txt"
RECORD = ROOT / "var" / "security" / "pip-audit.txt"
SERVICES = ("pypi", "osv")
TIMEOUT_S = 600


def ignored_ids() -> list[str]:
    """The vulnerability ids to ignore: one per line, `ID  why it does not apply`."""
    ids = []
    for number, line in enumerate(IGNORE_FILE.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{IGNORE_FILE.name}:{number}: {vuln_id} is ignored without a reason")
        ids.append(vuln_id)
    return ids


def audit(service: str, ignore: list[str]) -> tuple[dict | None, str]:
    """pip-audit's JSON report from `service`, or None and why there is none."""
    command = [
        sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off",
        "--format", "json", "--vulnerability-service", service,
        *(argument for vuln_id in ignore for argument in ("--ignore-vuln", vuln_id)),
    ]  # fmt: skip
    try:
        result = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"no answer within {TIMEOUT_S} s"
    try:
        report = json.loads(result.stdout)
    except ValueError:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"pip-audit failed: {last_line[:300]}"
    audited = [d for d in report["dependencies"] if "skip_reason" not in d]
    if not audited:
        skipped = len(report["dependencies"])
        return None, f"it audited none of the {skipped} packages (every one 'not found')"
    return report, ""


def main() -> int:
    ignore = ignored_ids()
    reasons = []
    for service in SERVICES:
        report, why = audit(service, ignore)
        if report is None:
            reasons.append(f"{service}: {why}")
            print(f"pip-audit: the {service} service cannot be used here: {why}")
            continue
        dependencies = report["dependencies"]
        audited = [d for d in dependencies if "skip_reason" not in d]
        vulnerable = [d for d in audited if d.get("vulns")]
        for dependency in vulnerable:
            for vuln in dependency["vulns"]:
                fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
                print(f"  {dependency['name']} {dependency['version']}: {vuln['id']} ({fixed})")
        print(
            f"pip-audit ({service}): {len(audited)} packages audited, {len(vulnerable)} with "
            f"known vulnerabilities, {len(dependencies) - len(audited)} not found there, "
            f"{len(ignore)} ids ignored by .ci/pip-audit-ignore.txt"
        )
        return 1 if vulnerable else 0
    banner = "!" * 78
    message = (
        "pip-audit could not reach any vulnerability service: the dependencies were NOT "
        "audited.\n" + "\n".join(f"  {reason}" for reason in reasons)
    )
    print(f"{banner}\n{message}\n{banner}", file=sys.stderr)
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(f"{datetime.now(UTC).isoformat()} {message}\n")
    return 2 if os.environ.get("CHORUS_AUDIT_REQUIRED") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
