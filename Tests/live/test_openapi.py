"""The JSON API against its description, docs/openapi.yaml, with schemathesis.

Schemathesis sends the description's examples, then requests built from its schemas (valid ones
and ones that break them: wrong types, missing fields, other content types) to a live server,
with the signup rate limit off so every answer is the API's own. Every answer must be one the
description lists, with the content type, headers and body it gives: no 500, and a 503 only
where it is documented. A fixed seed and a bounded number of examples keep the run short and
repeatable.
"""

import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

DESCRIPTION = REPO_ROOT / "docs" / "openapi.yaml"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


def run_schemathesis(base_url: str, report: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", str(DESCRIPTION), "--url", base_url,
         "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--max-examples", "40", "--seed", "20261201",
         "--workers", "1", "--request-timeout", "15", "--no-color", "--report", "junit",
         "--report-junit-path", str(report), *extra],
        capture_output=True, text=True, timeout=240, cwd=report.parent,
    )


def test_every_api_answer_matches_the_description(start_server, tmp_path):
    server = start_server(rate_limit="off", environment={"WAITLIST_ALLOWED_ORIGINS": "https://school.example"})
    result = run_schemathesis(f"http://127.0.0.1:{server.port}", tmp_path / "junit.xml")
    assert result.returncode == 0, f"schemathesis found answers the description does not allow:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    # It really talked to the API: the report names both operations.
    report = (tmp_path / "junit.xml").read_text()
    assert "POST /api/subscribe" in report and "OPTIONS /api/subscribe" in report
    server.assert_alive()
