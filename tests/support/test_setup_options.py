"""scripts/setup's --image-packages: names are checked before anything is
installed or built (the image build itself is exercised by hand: it takes
a minute and a Debian mirror; docs/operations.md, "The sandbox images")."""

import pathlib
import subprocess

import pytest

SETUP = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "setup"


@pytest.mark.parametrize("packages", ["bad;name", "jq $(id)", "UPPER", "-o"])
def test_a_bad_package_name_stops_setup_before_it_does_anything(packages):
    p = subprocess.run([str(SETUP), "--no-docker", "--image-packages", packages],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "is not a Debian package name" in p.stderr
    assert p.stdout == "", "nothing ran"


def test_help_names_the_option():
    p = subprocess.run([str(SETUP), "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert "--image-packages 'PKG ...'" in p.stdout
