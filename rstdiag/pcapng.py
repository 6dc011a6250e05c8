"""pcapng blocks, built: section headers, interface descriptions, enhanced packet blocks and
their options (draft-ietf-opsawg-pcapng), in either byte order.

`rstdiag annotate` writes its output with these, and `analyze_packets` the capture it hands
the engine. The engine reads pcapng (src/capture/); this module only writes.
"""

from __future__ import annotations

import struct

SHB = 0x0A0D0D0A
IDB = 0x00000001
OPB = 0x00000002  # obsolete packet block: options like an EPB's
SPB = 0x00000003  # simple packet block: no options, no timestamp
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_SNAPLEN_NONE = 0  # "no limit"
IF_TSRESOL = 9
IF_FCSLEN = 13
NANOSECONDS = 9  # if_tsresol: 10^-9 s
MAX_OPTION = 0xFFFF  # an option's length is 16 bits


def pad4(n: int) -> int:
    return (n + 3) & ~3


def option(code: int, value: bytes, order: str = "<") -> bytes:
    """One option: code, length, value padded to 32 bits."""
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (pad4(len(value))
                                                                           - len(value))


def end_of_options(order: str = "<") -> bytes:
    return struct.pack(order + "HH", OPT_ENDOFOPT, 0)


def comment_option(text: str, order: str = "<") -> bytes:
    """opt_comment with `text` as UTF-8, cut (at a character boundary) to fit an option."""
    value = text.encode("utf-8")
    if len(value) > MAX_OPTION:
        value = value[:MAX_OPTION].decode("utf-8", "ignore").encode("utf-8")
    return option(OPT_COMMENT, value, order)


def block(kind: int, body: bytes, order: str = "<") -> bytes:
    """A whole block: type, total length, body (a multiple of 4 bytes), total length."""
    length = len(body) + 12
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def section_header(order: str = "<") -> bytes:
    """A Section Header Block, version 1.0, section length unknown (-1)."""
    return block(SHB, struct.pack(order + "IHHq", BYTE_ORDER_MAGIC, 1, 0, -1), order)


def interface_description(linktype: int, snaplen: int = IF_SNAPLEN_NONE,
                          options: bytes = b"", order: str = "<") -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    if options:
        body += options + end_of_options(order)
    return block(IDB, body, order)


def enhanced_packet(interface: int, ts_units: int, data: bytes | memoryview, wirelen: int,
                    options: bytes = b"", order: str = "<") -> bytes:
    """An Enhanced Packet Block; `ts_units` in its interface's if_tsresol units."""
    caplen = len(data)
    body = b"".join((
        struct.pack(order + "IIIII", interface, (ts_units >> 32) & 0xFFFFFFFF,
                    ts_units & 0xFFFFFFFF, caplen, wirelen),
        data, b"\0" * (pad4(caplen) - caplen),
        options + end_of_options(order) if options else b""))
    return block(EPB, body, order)
