import pytest

from chatroom.names import NameProblem, check, key


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
