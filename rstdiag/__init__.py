"""rstdiag: who sent that TCP RST, and why?

The library works without the CLI; the engine (rstdiag._core, compiled from Rust) does the
reading, decoding, flow tracking and judging, with the GIL released::

    import rstdiag

    report = rstdiag.analyze("capture.pcap")        # a path, "-", or an open binary file
    for verdict in report:                          # each verdict as soon as it is final
        print(verdict.frame, verdict.label, verdict.sender, verdict.evidence)
    print(report.file.frames, report.summary())

Packets a notebook holds already (scapy's, or (timestamp, linktype, bytes) tuples) go through
the same engine with `rstdiag.analyze_packets(packets)`; scapy is never imported by rstdiag.
"""

from typing import TYPE_CHECKING, Any

from .analysis import FileReport, Report, analyze, analyze_file
from .errors import CaptureError, RstdiagError
from .labels import HINTS, Confidence, Endpoint, Label, Sender, Verdict

if TYPE_CHECKING:
    from .packets import PacketError, analyze_packets

__version__ = "0.1.0"

__all__ = [
    "HINTS",
    "CaptureError",
    "Confidence",
    "Endpoint",
    "FileReport",
    "Label",
    "PacketError",
    "Report",
    "RstdiagError",
    "Sender",
    "Verdict",
    "__version__",
    "analyze",
    "analyze_file",
    "analyze_packets",
]


def __getattr__(name: str) -> Any:
    # analyze_packets (and its decimal and pcapng writer) load only when asked for: `read`
    # never needs them
    if name in ("PacketError", "analyze_packets"):
        from . import packets

        return getattr(packets, name)
    raise AttributeError(f"module 'rstdiag' has no attribute {name!r}")
