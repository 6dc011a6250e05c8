"""Text from a capture reaches a terminal only as visible characters, never as markup."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from rstdiag.textsafe import data_text, visible


def test_escape_sequences_are_shown_as_escapes() -> None:
    assert visible("a\x1b[31mb\x1b]8;;file:///etc/passwd\x07") == (
        "a\\x1b[31mb\\x1b]8;;file:///etc/passwd\\x07")


def test_nul_del_and_c1_controls_are_shown_as_escapes() -> None:
    assert visible("\x00\x7f\x9b") == "\\x00\\x7f\\x9b"


def test_bidi_overrides_and_zero_width_characters_are_shown_as_escapes() -> None:
    assert visible("abc\u202edef\u200b") == "abc\\u202edef\\u200b"


def test_printable_text_and_accents_are_left_as_they_are() -> None:
    assert visible("GET / HTTP/1.1 [fe80::1]:443 café") == "GET / HTTP/1.1 [fe80::1]:443 café"


def test_rich_markup_in_data_is_printed_literally() -> None:
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=200).print(
        data_text("[/] [link=file:///etc/passwd]y[/link] [fe80::1]:40000"))
    assert "[/] [link=file:///etc/passwd]y[/link] [fe80::1]:40000" in out.getvalue()
    assert "\x1b]8" not in out.getvalue()


@given(st.text())
def test_no_control_character_of_the_input_survives(text: str) -> None:
    shown = visible(text)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in shown)
    assert "\u202e" not in shown and "\u2066" not in shown
