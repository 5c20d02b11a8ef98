import pytest

from chatroom.names import NameProblem, check, key, skeleton


@pytest.mark.parametrize("name", ["alice", "Bob_2", "x", "a.b-c", "Zoë", "李雷", "नमस्ते", "a" * 20])
def test_valid(name):
    assert check(name) == name


@pytest.mark.parametrize("name, why", [
    ("", "empty"), ("   ", "empty"), ("a" * 21, "at most 20"), ("two words", "a space"),
    ("semi;colon", "';'"), ("esc\x1b", "'\\x1b'"), ("emoji👋", "'👋'"), ("\u0301accent", "'\u0301'"),
])
def test_invalid_says_why(name, why):
    with pytest.raises(NameProblem) as info:
        check(name)
    assert info.value.code == "name_invalid" and why in info.value.message


def test_same_name_ignoring_case_and_compatibility_forms():
    assert key("BOB") == key("bob") == key("ＢＯＢ") == key("Ｂｏｂ")
    assert check("ＢＯＢ") == "BOB"
    assert key("Straße") == key("STRASSE")
    assert key("alice") != key("alicia")


INVISIBLE = ["\u034f", "\ufe00", "\ufe0f", "\u3164", "\u115f", "\u1160", "\u17b4", "\u17b5", "\u180b",
             "\u180e", "\U000e0100", "\uffa0", "\u200b", "\u200d", "\u2060", "\u00ad", "\ufeff"]


@pytest.mark.parametrize("mark", INVISIBLE)
def test_invisible_characters_are_refused(mark):
    with pytest.raises(NameProblem) as info:
        check("alice" + mark)
    assert info.value.code == "name_invalid" and "an invisible character" in info.value.message


@pytest.mark.parametrize("blank", ["\u3164", "\u115f\u1160", "\uffa0", "\u3164\u3164\u3164"])
def test_names_made_of_hangul_fillers_are_refused(blank):
    with pytest.raises(NameProblem) as info:
        check(blank)
    assert info.value.code == "name_invalid"


@pytest.mark.parametrize("present, newcomer", [
    ("bob", "B\u041eB"),            # Cyrillic capital O
    ("bob", "\u0412\u041e\u0412"),  # all Cyrillic capitals
    ("bob", "BOB"), ("bob", "b0b"),
    ("olga", "\u041eLGA"), ("alice", "\u0410LICE"),
    ("alice", "aIice"), ("alice", "\u0430lice"), ("alice", "al\u0456ce"),
])
def test_look_alikes_share_a_skeleton_whatever_their_case(present, newcomer):
    assert skeleton(newcomer) == skeleton(present)


@pytest.mark.parametrize("one, other", [("alice", "alicia"), ("bob", "rob"), ("ann", "amy"), ("li", "lu")])
def test_different_names_keep_different_skeletons(one, other):
    assert skeleton(one) != skeleton(other)
