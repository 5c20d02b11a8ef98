"""The test harness's own workarounds (tests/conftest.py), for the limits of the Windows set-up under Wine."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from conftest import TIMEOUT, UNDER_WINE, WINE_LOST_THE_CHILD, start_again_when_wine_loses_the_child


def lost_child() -> OSError:
    error = OSError(22, "Internal error")
    error.winerror = WINE_LOST_THE_CHILD  # type: ignore[attr-defined]
    return error


def test_a_child_wine_lost_at_its_start_is_started_again_on_the_same_popen(monkeypatch: pytest.MonkeyPatch) -> None:
    execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    failures = [lost_child()]

    def loses_the_first(self: subprocess.Popen[Any], *args: Any) -> None:
        if failures:
            raise failures.pop()
        execute_child(self, *args)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", loses_the_first)
    monkeypatch.setattr(subprocess.Popen, "__init__", start_again_when_wine_loses_the_child(subprocess.Popen.__init__))
    with pytest.warns(UserWarning, match="Wine lost a child at its start"):
        result = subprocess.run([sys.executable, "-c", "print(input()[::-1])"], input="olleh\n", capture_output=True,
                                text=True, timeout=TIMEOUT * 3)
    assert (result.returncode, result.stdout) == (0, "hello\n")


def test_only_wine_losing_the_child_is_tried_again() -> None:
    calls: list[int] = []

    def refuses(self: object) -> None:
        calls.append(1)
        raise FileNotFoundError(2, "No such file")

    with pytest.raises(FileNotFoundError):
        start_again_when_wine_loses_the_child(refuses)(object())
    assert len(calls) == 1


def test_a_child_wine_loses_every_time_fails_the_test() -> None:
    calls: list[int] = []

    def always_lost(self: object) -> None:
        calls.append(1)
        raise lost_child()

    with pytest.warns(UserWarning), pytest.raises(OSError, match="Internal error"):
        start_again_when_wine_loses_the_child(always_lost)(object())
    assert len(calls) == 3


@pytest.mark.skipif(not UNDER_WINE, reason="the workaround is installed under Wine only")
def test_under_wine_every_process_the_tests_start_is_started_through_it() -> None:
    assert subprocess.Popen.__init__.__name__ == "__init__"
    assert hasattr(subprocess.Popen.__init__, "__wrapped__")
