"""What the window shows for an event, as Tk tag runs (pure: no Tk, no display)."""

from chatroom.client.gui import styling
from chatroom.protocol import Joined, Message, Private
from chatroom.render import color_rgb, name_color, render

TS = 1_790_000_000.0


def test_the_runs_say_what_the_console_says():
    for event in [Message(1, "bob", "hi", ts=TS), Message(2, "bob", "waves", action=True, ts=TS),
                  Private(3, "bob", "amy", "psst", ts=TS), Joined(4, "cy", ts=TS)]:
        assert styling.plain(styling.event_runs(event, "amy")) == render(event, "amy") + "\n"


def test_a_name_has_the_consoles_color():
    for name in ["bob", "carol", "dave", "ＢＯＢ", "zoë"]:
        runs = styling.event_runs(Message(1, name, "hi", ts=TS), "amy")
        tag = next(tags[0] for text, tags in runs if text == name)
        assert styling.NAME_TAGS[tag] == color_rgb(name_color(name))  # the console's 256-color choice
    own = styling.event_runs(Message(1, "amy", "hi", ts=TS), "amy")
    assert ("amy", ("own",)) in own


def test_private_messages_and_mentions_mark_the_whole_line():
    private = styling.event_runs(Private(1, "bob", "amy", "psst", ts=TS), "amy")
    assert all("private_line" in tags for _, tags in private)
    mention = styling.event_runs(Message(1, "bob", "amy: lunch?", ts=TS), "amy")
    assert all("mention_line" in tags for _, tags in mention)
    assert all(tags == () or tags[0] in ("time",) or tags[0].startswith("name")
               for _, tags in styling.event_runs(Message(1, "bob", "lunch?", ts=TS), "amy"))
    assert ("-- cy joined", ("system",)) in styling.event_runs(Joined(1, "cy", ts=TS), "amy")


def test_nothing_from_the_network_can_forge_a_marker():
    text = "\x0esystem\x0ffake\x10 \x1b[31m"
    runs = styling.event_runs(Message(1, "bob\x0e", text, ts=TS), "amy")
    assert styling.plain(runs).endswith("<bob> systemfake [31m\n")
    assert {tag for _, tags in runs for tag in tags} <= {"time", *styling.NAME_TAGS}


def test_every_name_and_role_reads_on_both_themes_and_a_name_keeps_its_hue():
    import colorsys

    from chatroom.client.gui.theme import READABLE, contrast, palette

    light, dark = palette("light"), palette("dark")
    for colors in (light, dark):
        for color in (*colors.names, colors.own, colors.grey, colors.error, colors.private, colors.foreground):
            assert contrast(color, colors.background) >= READABLE, (colors.mode, color)

    def hue(color: str) -> float:
        return colorsys.rgb_to_hls(*(int(color[index:index + 2], 16) / 255 for index in (1, 3, 5)))[0] * 360

    for lighter, darker in zip(dark.names, light.names):
        apart = abs(hue(lighter) - hue(darker)) % 360
        assert min(apart, 360 - apart) < 6, (lighter, darker)  # the same color, a shade darker on light
