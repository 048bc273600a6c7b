"""The files under `deploy/` that an operator copies as they are: the settings file example is read
by the real binary, and the systemd units pass `systemd-analyze verify`."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, waitlist_binary

DEPLOY = REPO_ROOT / "deploy"


def test_every_line_of_the_settings_example_is_read(tmp_path):
    """`waitlist status` with the example as its settings file (only the database moved here) runs,
    and it took the example's values: its base URL shows in an open's dry run."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "WAITLIST_CONFIG": str(DEPLOY / "waitlist.env.example"),
        "WAITLIST_DATABASE": str(tmp_path / "w.sqlite"),
    }
    status = subprocess.run([str(waitlist_binary()), "status"], capture_output=True, text=True, env=environment, timeout=60)
    assert status.returncode == 0, status.stderr
    dry_run = subprocess.run(
        [str(waitlist_binary()), "open", "--date", "2027-03-15", "--url", "https://school.example/enrol", "--dry-run"],
        capture_output=True, text=True, env=environment, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "https://waitlist.school.example/unsubscribe/" in dry_run.stdout


@pytest.mark.parametrize("unit", ["waitlist.service", "litestream.service"])
def test_the_unit_passes_systemd_analyze_verify(tmp_path, unit):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    text = (DEPLOY / unit).read_text()
    # verify checks that ExecStart names an executable: point it at one that exists here.
    for installed in ("/usr/local/bin/waitlist", "/usr/local/bin/litestream"):
        text = text.replace(installed, "/bin/true")
    (tmp_path / unit).write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def service_settings(unit: str) -> dict[str, str]:
    """The `[Service]` section's settings of a unit file, the last of each name winning."""
    settings: dict[str, str] = {}
    section = ""
    for line in (DEPLOY / unit).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            settings[name.strip()] = value.strip()
    return settings


def test_the_service_makes_nothing_readable_by_others_and_has_descriptors_for_a_slow_flood():
    """UMask=0007 and a setgid state folder (2770): what the service makes is the owner's and the
    group's only, and keeps the group; LimitNOFILE far above the default 1,024, which a
    slow-connection flood used up (real visitors failed for 45 of 75 seconds)."""
    settings = service_settings("waitlist.service")
    assert settings.get("UMask") == "0007"
    assert settings.get("StateDirectoryMode") == "2770"
    assert int(settings.get("LimitNOFILE", "1024")) >= 65536
