"""A pinned package version older than the installed one, installed by the real bash scripts, here:
through the stand-in apt-get and dpkg-query of tests/fleet/bin (which refuse a downgrade without
--allow-downgrades, as apt-get does), and through shims of dnf and yum that behave as each does with
`install NAME-OLDER` (dnf goes down to it; the yum of EL7 says "Nothing to do" and needs
`downgrade`). No real package manager runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmith.domain.script_catalog import render
from opsmith.domain.scripts import ScriptExit, sh_quote
from tests.integration.test_scripts_bash import Host, write_program

pytestmark = pytest.mark.integration

PIN = {"package": "nginx", "version": "1.22.1-9"}


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Host]:
    host = Host(tmp_path)
    yield host
    host.stop_all()


def apt_state(host: Host, installed: str) -> Path:
    packages = host.state / "packages"
    (packages / "available").mkdir(parents=True)
    (packages / "installed").mkdir()
    (packages / "available" / "nginx").write_text("1.22.1-9\n1.26.0-1\n")
    (packages / "installed" / "nginx").write_text(f"{installed}\n")
    return packages


def test_apt_get_goes_down_to_the_pinned_version(machine: Host) -> None:
    packages = apt_state(machine, "1.26.0-1")
    ran = machine.run(render("package_install", "linux", PIN))
    assert ran.code == 0, ran.stderr
    assert (ran.got["previous"], ran.got["version"], ran.got["changed"]) == ("1.26.0-1", "1.22.1-9", True)
    assert (packages / "installed" / "nginx").read_text() == "1.22.1-9\n"
    assert "--allow-downgrades" in (packages / "apt-get.log").read_text().splitlines()[-1]


def test_a_version_the_repositories_no_longer_offer_fails_and_changes_nothing(machine: Host) -> None:
    packages = apt_state(machine, "1.26.0-1")
    ran = machine.run(render("package_install", "linux", {"package": "nginx", "version": "1.20.0-1"}))
    assert ran.code == ScriptExit.FAILED and "apt-get failed with exit code 100" in ran.got["error"]
    assert "Version '1.20.0-1' for 'nginx' was not found" in ran.stderr
    assert (ran.got["previous"], ran.got["version"]) == ("1.26.0-1", "1.26.0-1")
    assert (packages / "installed" / "nginx").read_text() == "1.26.0-1\n"


def rpm_shims(host: Host, manager: str, installed: str) -> Path:
    """`manager` (dnf or yum) and rpm over one state file; the calls are logged."""
    fakes, version, log = host.root / "fakes", host.root / "installed", host.root / "pm.log"
    fakes.mkdir()
    version.write_text(installed)
    quoted, logged = sh_quote(str(version)), sh_quote(str(log))
    # An older pin: dnf's `install` goes down to it, yum's does nothing; `downgrade` does, in both.
    older_install = f"echo ${{want}} > {quoted}" if manager == "dnf" else 'echo "Nothing to do"'
    write_program(
        fakes / manager,
        f'echo "{manager} $*" >> {logged}\n'
        "verb=$2 want=${3#nginx-} have=$(cat " + quoted + ")\n"
        'if [ "$verb" = downgrade ]; then echo "$want" > ' + quoted + "; exit 0; fi\n"
        'lower=$(printf "%s\\n%s\\n" "$want" "$have" | sort -V | head -n 1)\n'
        f'if [ "$lower" = "$want" ] && [ "$want" != "$have" ]; then {older_install}; exit 0; fi\n'
        f"echo $want > {quoted}\n",
    )
    write_program(fakes / "rpm", f"cat {quoted}\n")
    host.path = f"{fakes}:{host.bin_without('apt-get', 'dnf', 'yum', 'zypper', 'dpkg-query', 'rpm')}"
    return log


@pytest.mark.parametrize(
    ("manager", "calls"),
    [
        ("dnf", ["dnf -y install nginx-1.22.1-9"]),
        ("yum", ["yum -y install nginx-1.22.1-9", "yum -y downgrade nginx-1.22.1-9"]),
    ],
)
def test_dnf_and_yum_go_down_to_the_pinned_version(machine: Host, manager: str, calls: list[str]) -> None:
    log = rpm_shims(machine, manager, "1.26.0-1")
    ran = machine.run(render("package_install", "linux", PIN))
    assert ran.code == 0, ran.stderr
    assert (ran.got["manager"], ran.got["previous"], ran.got["version"]) == (manager, "1.26.0-1", "1.22.1-9")
    assert log.read_text().splitlines() == calls


def test_a_newer_pin_is_an_upgrade_with_no_downgrade_tried(machine: Host) -> None:
    log = rpm_shims(machine, "yum", "1.20.0-1")
    ran = machine.run(render("package_install", "linux", PIN))
    assert ran.code == 0 and ran.got["version"] == "1.22.1-9", ran.stderr
    assert log.read_text().splitlines() == ["yum -y install nginx-1.22.1-9"]
