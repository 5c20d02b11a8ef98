"""Wrong-password delays per address, driven by a fake clock (the time is passed in)."""

import threading

import pytest

from chatroom.ratelimit import GuessDelay


def test_each_wrong_answer_is_held_longer_up_to_the_cap():
    delay = GuessDelay(base=1.0, cap=30.0, quiet=600.0)
    held = [delay.fail("10.0.0.1", now=float(t)) for t in range(10)]
    assert held == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_penalty_tells_the_next_hold_without_counting_a_failure():
    delay = GuessDelay(base=1.0, cap=30.0, quiet=60.0)
    assert delay.penalty("a", now=0.0) == 0.0
    delay.fail("a", now=0.0)
    assert delay.penalty("a", now=1.0) == delay.penalty("a", now=2.0) == 1.0
    assert delay.fail("a", now=3.0) == 1.0


def test_addresses_are_counted_apart():
    delay = GuessDelay(base=1.0, cap=30.0, quiet=60.0)
    for t in range(5):
        delay.fail("guesser", now=float(t))
    assert delay.penalty("guesser", now=5.0) == 16.0
    assert delay.penalty("someone else", now=5.0) == 0.0


def test_a_quiet_address_starts_afresh():
    delay = GuessDelay(base=1.0, cap=30.0, quiet=60.0)
    for t in range(4):
        delay.fail("a", now=float(t))
    assert delay.penalty("a", now=62.9) == 8.0  # 59.9 s after the last failure
    assert delay.penalty("a", now=63.0) == 0.0
    assert delay.fail("a", now=63.0) == 0.0
    assert len(delay) == 1


def test_memory_is_bounded_oldest_address_forgotten_first():
    delay = GuessDelay(base=1.0, cap=30.0, quiet=60.0, max_addresses=3)
    for address in ("a", "b", "a", "c", "d"):
        delay.fail(address, now=0.0)
    assert len(delay) == 3
    assert delay.penalty("b", now=0.0) == 0.0  # the least recently failing one went
    assert delay.penalty("a", now=0.0) == 2.0  # a failed twice


def test_expired_addresses_are_dropped_as_time_passes():
    delay = GuessDelay(base=1.0, cap=30.0, quiet=60.0)
    for index in range(100):
        delay.fail(f"10.0.0.{index}", now=float(index) / 10)
    delay.fail("late", now=100.0)
    assert len(delay) == 1


@pytest.mark.parametrize("bad", [{"base": -1.0}, {"cap": -1.0}, {"quiet": 0.0}, {"max_addresses": 0}])
def test_nonsense_settings_are_refused(bad):
    with pytest.raises(ValueError):
        GuessDelay(**bad)


def test_threads_lose_no_failure():
    delay = GuessDelay(base=1.0, cap=1e9, quiet=1e9, max_addresses=10)
    threads = [threading.Thread(target=lambda: [delay.fail("a", now=0.0) for _ in range(50)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert delay.failures("a", now=0.0) == 400
