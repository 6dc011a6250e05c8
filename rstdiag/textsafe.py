"""Text from a capture is data: shown visibly, never interpreted by a terminal or by rich.

Payload text, addresses, interface names and comments come from the wire or from a file
anyone can write. Before they reach a terminal, control characters (C0, DEL, C1: ESC starts
CSI, OSC and DCS sequences), bidirectional overrides and other invisible format characters
become visible escapes, as tcpdump shows unprintable bytes; rich renders them as
`rich.text.Text`, never as markup.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return True
    return code >= 0xA0 and unicodedata.category(ch) in ("Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def visible(text: str) -> str:
    """`text` with every control and invisible format character written as an escape
    (`\\x1b`, `\\u202e`); a backslash stays a backslash."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape_char(ch) if _needs_escape(ch) else ch for ch in text)


def data_text(text: str, style: str = "") -> Text:
    """A rich Text of capture-derived `text`: escaped as `visible` does, never markup."""
    from rich.text import Text  # here: the machine formats use `visible` without rich

    return Text(visible(text), style=style)
