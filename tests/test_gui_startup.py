"""The window client's start-up errors: one line each, without needing tkinter or a display."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TIMEOUT

from chatroom.client.main import main
from chatroom.client.session import USAGE

ROOT = Path(__file__).resolve().parent.parent


def test_missing_tkinter_is_one_line_naming_the_package_and_status_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tkinter", None)  # what `import tkinter` meets without python3-tk
    assert main(["--gui", "127.0.0.1", "1", "amy"]) == USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("client.py: error: ") and "python3-tk" in err


@pytest.mark.skipif(sys.platform != "linux", reason="DISPLAY is how X11 finds a screen")
def test_no_display_is_one_line_and_status_2():
    env = {key: value for key, value in os.environ.items() if key != "DISPLAY"}
    result = subprocess.run([sys.executable, str(ROOT / "client.py"), "--gui"], capture_output=True, text=True,
                            env=env, timeout=TIMEOUT)
    if "needs Python's tkinter" in result.stderr:
        pytest.skip("this Python has no tkinter")
    assert result.returncode == 2
    assert result.stderr.startswith("client.py: error: cannot open a window: ") and result.stderr.count("\n") == 1
