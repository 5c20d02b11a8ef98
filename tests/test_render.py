"""Each event kind as text, with and without colors, never carrying control characters."""

import time

import pytest

from chatroom.protocol import (
    Bye, CaughtUp, Error, Found, Help, Joined, Left, Message, Private, Renamed, Shutdown, Users, Welcome,
)
from chatroom.render import (
    NAME_COLORS, NAME_HUES, PLAIN, NameSlots, Theme, attention, clock, color_rgb, day_line, name_color,
    render,
)

TS = time.mktime((2026, 11, 22, 14, 2, 0, 0, 0, -1))
COLORS = Theme(time="<t>", system="<s>", error="<e>", private="<p>", earlier="<old>", own="<me>",
               mention="<hl>", palette=("<c1>", "<c2>", "<c3>"), reset="</>")


@pytest.mark.parametrize("event, text", [
    (Message(seq=1, sender="alice", text="hi", ts=TS), "[14:02] <alice> hi"),
    (Message(seq=1, sender="alice", text="waves", action=True, ts=TS), "[14:02] * alice waves"),
    (Message(seq=1, sender="alice", text="hi", earlier=True, ts=TS), "[14:02] (earlier) <alice> hi"),
    (Private(seq=1, sender="alice", to="bob", text="psst", ts=TS), "[14:02] [private from alice] psst"),
    (Joined(seq=1, name="carol", ts=TS), "[14:02] -- carol joined"),
    (Left(seq=1, name="carol", reason="lost", ts=TS), "[14:02] -- carol left (connection lost)"),
    (Left(seq=1, name="carol", reason="slow", ts=TS), "[14:02] -- carol left (dropped for being too slow to read)"),
    (Renamed(seq=1, old="carol", new="caz", ts=TS), "[14:02] -- carol is now known as caz"),
    (Welcome(name="bob", users=["alice", "bob"], ts=TS),
     "[14:02] -- Welcome, bob! Here now: alice, bob. Type /help for the commands."),
    (Users(users=["alice", "bob"], you="bob"), "Users here (2):\n  [1] alice\n  [2] bob (you)"),
    (Help(lines=["Commands:", "  ?"]), "Commands:\n  ?"),
    (Error(code="unknown_user", message='no user named "x"'), '! no user named "x"'),
    (Bye(reason="quit"), "-- Goodbye!"),
    (Bye(reason="timeout"), "-- Disconnected: timed out: no answer from the client"),
    (Shutdown(), "-- The server is shutting down."),
])
def test_plain(event, text):
    assert render(event, me="bob") == text


def test_private_message_shows_the_other_party_both_ways():
    event = Private(seq=1, sender="alice", to="bob", text="psst", ts=TS)
    assert render(event, me="alice") == "[14:02] [private to bob] psst"
    assert render(event, me="bob") == "[14:02] [private from alice] psst"
    assert render(event) == "[14:02] [private alice -> bob] psst"


def test_colors_mark_time_own_name_and_give_each_user_a_stable_color():
    own = render(Message(seq=1, sender="bob", text="hi", ts=TS), me="bob", theme=COLORS)
    assert own == "<t>[14:02]</> <<me>bob</>> hi"
    first = render(Message(seq=1, sender="alice", text="a", ts=TS), me="bob", theme=COLORS)
    again = render(Message(seq=9, sender="ALICE", text="b", ts=TS), me="bob", theme=COLORS)
    color = first[first.index("<<") + 1:][:4]
    assert color in COLORS.palette and again[again.index("<<") + 1:][:4] == color


def test_kinds_look_distinct_with_colors():
    assert render(Error(code="x", message="m"), theme=COLORS).startswith("<e>")
    private = Private(seq=1, sender="alice", to="bob", text="x", ts=TS)
    assert "<p>[private from </><c3>alice</><p>]</>" in render(private, me="bob", theme=COLORS)
    assert "<s>-- " in render(Joined(seq=1, name="x", ts=TS), theme=COLORS)
    assert "<old>(earlier)</>" in render(Message(seq=1, sender="a", text="x", earlier=True, ts=TS), theme=COLORS)


def test_plain_theme_writes_no_escape_codes():
    assert PLAIN.name("alice") == "alice" and PLAIN.paint("", "x") == "x"


def test_network_text_is_sanitized():
    evil = Message(seq=1, sender="a\x1b]0;pwned\x07", text="\x1b[2J\x1b[Hgone\u202e", ts=TS)
    out = render(evil)
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out


def test_private_messages_and_mentions_want_attention_each_as_what_it_is():
    assert attention(Private(seq=1, sender="alice", to="bob", text="x"), "bob") == "private"
    assert attention(Private(seq=1, sender="bob", to="alice", text="x"), "bob") is None
    assert attention(Message(seq=1, sender="alice", text="hey Bob, look"), "bob") == "mention"
    assert attention(Message(seq=1, sender="alice", text="bobsleigh"), "bob") is None
    assert attention(Message(seq=1, sender="bob", text="I am bob"), "bob") is None
    assert attention(Message(seq=1, sender="alice", text="bob", earlier=True), "bob") is None


def test_a_line_that_mentions_me_is_highlighted_whole_and_plain_text_stays_plain():
    event = Message(seq=1, sender="alice", text="hi Bob!", ts=TS)
    line = render(event, me="bob", theme=COLORS)
    assert line.startswith("<hl><t>[14:02]</><hl> <") and line.endswith("</><hl>> hi Bob!</>")
    assert render(event, me="bob") == "[14:02] <alice> hi Bob!"
    assert "<hl>" not in render(Message(seq=1, sender="alice", text="hi bobby", ts=TS), me="bob", theme=COLORS)
    assert "<hl>" not in render(Message(seq=1, sender="bob", text="I am bob", ts=TS), me="bob", theme=COLORS)
    assert "<hl>" not in render(Message(seq=1, sender="alice", text="hi bob", earlier=True, ts=TS), me="bob",
                                theme=COLORS)
    assert attention(Message(seq=1, sender="alice", text="hi", ts=TS), "") is None


COMMON_NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
                "oscar", "peggy", "trent", "victor", "walter", "sam", "max", "anna", "tom"]


def test_name_colors_come_from_a_large_palette_and_keep_names_apart():
    assert len(set(NAME_COLORS)) == len(NAME_COLORS) > 30
    colors = {name: name_color(name) for name in COMMON_NAMES}
    assert colors["alice"] != colors["carol"]
    assert len(set(colors.values())) >= 15  # 20 names over at least 15 colors
    assert len({colors[name] for name in COMMON_NAMES[:10]}) >= 9  # the demo's names
    assert name_color("ALICE") == colors["alice"] and all(16 <= color <= 231 for color in colors.values())


def test_color_rgb_for_a_window():
    assert color_rgb(196) == "#ff0000" and color_rgb(21) == "#0000ff" and color_rgb(16) == "#000000"
    assert color_rgb(209) == "#ff875f"


def test_the_catch_up_marker_counts_what_was_missed_and_is_one_marker():
    assert render(CaughtUp(count=12, ts=TS)) == "[14:02] — 12 messages while you were away —"
    assert render(CaughtUp(count=0, ts=TS), theme=COLORS) == "<t>[14:02]</> <s>— nothing new while you were away —</>"
    assert render(CaughtUp(count=1, ts=0)).endswith("— 1 message while you were away —")
    assert render(CaughtUp(count=0, ts=0)).endswith("— nothing new while you were away —")
    assert "3 older events could not be replayed" in render(CaughtUp(count=5, missing=3, ts=0))


@pytest.mark.parametrize("ts", [1e30, float("nan"), float("inf"), -1e20])
def test_a_time_that_cannot_be_shown_is_drawn_as_dashes_not_an_error(ts):
    assert clock(ts) == "--:--"
    assert render(Message(seq=1, sender="alice", text="hi", ts=ts)) == "[--:--] <alice> hi"


def test_two_names_here_get_colors_of_hues_apart_while_the_palette_has_room():
    clashing = ("bob", "carol")  # their hashes pick neighbouring greens of the palette
    assert abs(NAME_HUES[NAME_COLORS.index(name_color("bob"))] - NAME_HUES[NAME_COLORS.index(name_color("carol"))]) < 45
    slots = NameSlots(len(NAME_COLORS), NAME_HUES)
    slots.here(clashing)
    assert slots.slot("bob") == NAME_COLORS.index(name_color("bob"))  # the first keeps its own
    hues = [NAME_HUES[slots.slot(name)] for name in clashing]
    assert min(abs(hues[0] - hues[1]), 360 - abs(hues[0] - hues[1])) >= 45
    slots.here(COMMON_NAMES[:6])  # six names, six hues at least 45 degrees apart
    taken = [NAME_HUES[slots.slot(name)] for name in COMMON_NAMES[:6]]
    assert all(min(abs(a - b), 360 - abs(a - b)) >= 45 for index, a in enumerate(taken) for b in taken[index + 1:])
    slots.here(COMMON_NAMES)  # 20 names: hues meet, but no two names have the same color
    assert len({slots.slot(name) for name in COMMON_NAMES}) == 20
    exact = NameSlots(3)  # without hues, only the same color counts
    exact.here(["a", "b", "c"])
    assert sorted(exact.slot(name) for name in "abc") == [0, 1, 2]


def test_a_theme_keeping_names_apart_colors_by_its_slots():
    theme = Theme(palette=("<c1>", "<c2>"), reset="</>").keeping_names_apart()

    def color(name: str) -> str:
        return theme.name(name).removesuffix(f"{name}</>")

    clash = next(name for name in COMMON_NAMES if color(name) == color("bob") and name != "bob")
    theme.slots.here(["bob", clash])
    assert color("bob") != color(clash)
    assert PLAIN.keeping_names_apart() is PLAIN


def test_day_lines_and_old_answers_carry_their_dates():
    tuesday = time.mktime((2026, 12, 1, 9, 17, 0, 0, 0, -1))
    assert day_line(tuesday) == "— Tuesday 1 December —"
    wednesday = tuesday + 86_400
    found = Found(query=None, messages=[Message(1, "bob", "old", ts=tuesday), Message(2, "bob", "older", ts=tuesday),
                                        Message(3, "cy", "new", ts=wednesday)])
    assert render(found).split("\n") == ["The last messages (3):", "— Tuesday 1 December —", "[09:17] <bob> old",
                                         "[09:17] <bob> older", "— Wednesday 2 December —", "[09:17] <cy> new"]
