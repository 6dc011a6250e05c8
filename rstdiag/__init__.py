"""rstdiag: who sent that TCP RST, and why?

The library core is usable without the CLI::

    from rstdiag.analysis import analyze_file
    report = analyze_file("capture.pcap")
    for verdict in report.verdicts:
        print(verdict.frame, verdict.label, verdict.evidence)
"""

__version__ = "0.1.0"
