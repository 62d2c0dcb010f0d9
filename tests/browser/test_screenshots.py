"""The screenshot script, run as people run it: every PNG it promises exists, is a PNG, and
has its size's width; and it never writes into the repository's tracked tree."""

import os
import pathlib
import struct
import subprocess
import sys

from screenshots import ROOT, SCREENS, SIZES, variants

SCRIPT = pathlib.Path(__file__).parent / "screenshots.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=os.environ, timeout=600)


def png_width(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    # The first chunk is IHDR: length, type, then width and height, big-endian.
    assert data[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    return struct.unpack(">I", data[16:20])[0]


def test_the_script_writes_every_main_screen_in_light_and_dark_at_both_sizes(tmp_path):
    # Act
    done = run_script("--out", str(tmp_path))

    # Assert
    assert done.returncode == 0, done.stderr
    expected = {
        f"{name}-{scheme}-{size}.png": SIZES[size][0]
        for name, screen in SCREENS.items()
        if screen.main
        for scheme, size in variants(screen)
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    for name, width in expected.items():
        assert png_width(tmp_path / name) == width, name
        assert str(tmp_path / name) in done.stdout


def test_the_script_refuses_the_repositorys_tracked_tree():
    # Act
    done = run_script("--out", str(ROOT / "tests" / "browser"))

    # Assert
    assert done.returncode != 0
    assert "not git-ignored" in done.stderr
    assert not list((ROOT / "tests" / "browser").glob("*.png"))
