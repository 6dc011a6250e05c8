"""`rstdiag annotate`: the capture back as pcapng, every packet unchanged, each RST with a
packet comment Wireshark shows, filters on and keeps beside the comments the file had. Checked
with tshark, and with the engine's own reader frame by frame."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from rstdiag import analyze_file
from rstdiag.annotate import comment_text
from rstdiag.frames import read_frames
from rstdiag.pcapng import enhanced_packet, interface_description, option, section_header

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
PUBLIC = ROOT.parent / "shared" / "pcaps-public"

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

PROJECT = sorted(p for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))
# every pcapng of the public corpus (several interfaces, link types, existing blocks), and
# pcaps of other link types (SLL2) and byte orders
PUBLIC_CHOSEN = sorted(p for p in PUBLIC.glob("*") if p.suffix == ".pcapng"
                       or p.name in ("suricata-verify__decode-sll2-01__input.pcap",
                                     "tcpdump__mptcp-tcprst.pcap",
                                     "zeek__rst-inject-rae.pcap")) if PUBLIC.is_dir() else []


SEP = "\x1e"  # between the values of a field that occurs more than once (several comments)


def annotate(src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rstdiag", "annotate", str(src), "-w", str(out)],
                          capture_output=True, text=True)


def tshark_fields(path: Path, *fields: str, display_filter: str | None = None) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E",
            f"aggregator={SEP}"]
    if display_filter:
        args += ["-Y", display_filter]
    for name in fields:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.split("\n") if line]


def tshark_frames(path: Path) -> tuple[list[list[str]], str]:
    """Each frame as tshark sees it: number, time, lengths, interface (none in a classic
    pcap: 0, its only one), link type; and every byte, as tshark's hex dumps."""
    fields = [[value or "0" for value in row] for row in tshark_fields(
        path, "frame.number", "frame.time_epoch", "frame.len", "frame.cap_len",
        "frame.interface_id", "frame.encap_type")]
    dumps = subprocess.run(["tshark", "-r", str(path), "-x"], capture_output=True, text=True,
                           check=True).stdout
    return fields, dumps


def read_labels(path: Path) -> dict[str, list[int]]:
    doc = json.loads(subprocess.run(["rstdiag", "read", "--format", "json", str(path)],
                                    capture_output=True, text=True, check=True).stdout)
    frames: dict[str, list[int]] = defaultdict(list)
    for rst in doc["rsts"]:
        frames[rst["label"]].append(rst["frame"])
    return frames


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """Each capture annotated once for the tests of this module."""
    done: dict[Path, Path] = {}

    def get(path: Path) -> Path:
        if path not in done:
            out = tmp_path_factory.mktemp("annotated") / f"{path.stem}.pcapng"
            assert annotate(path, out).returncode == 0
            done[path] = out
        return done[path]

    return get


@pytest.mark.parametrize("path", PROJECT + PUBLIC_CHOSEN, ids=lambda p: p.name)
def test_each_rst_carries_its_verdict_as_a_comment_and_no_other_packet_gains_one(
        path: Path, annotated: Callable[[Path], Path]) -> None:
    out = annotated(path)
    want = {v.frame: comment_text(v) for v in analyze_file(str(path)).verdicts}
    got = {int(frame): comments.split(SEP)[-1] for frame, comments in
           tshark_fields(out, "frame.number", "frame.comment",
                         display_filter='frame.comment contains "rstdiag: "')}
    assert got == want


@pytest.mark.parametrize("path", PROJECT + PUBLIC_CHOSEN, ids=lambda p: p.name)
def test_every_packet_keeps_its_bytes_time_interface_and_link_type(
        path: Path, annotated: Callable[[Path], Path]) -> None:
    out = annotated(path)
    assert tshark_frames(out) == tshark_frames(path)
    engine = [(f.frame, f.ts, f.linktype, f.data, f.wirelen) for f in read_frames(str(path))]
    assert [(f.frame, f.ts, f.linktype, f.data, f.wirelen)
            for f in read_frames(str(out))] == engine


def test_a_filter_on_a_cause_lists_exactly_the_frames_read_labels_so(tmp_path: Path) -> None:
    out = tmp_path / "annotated.pcapng"
    path = PCAPS / "sample.pcapng"
    assert annotate(path, out).returncode == 0
    labels = read_labels(path)
    assert "accept-overflow" in labels and "half-open" in labels
    for label, frames in labels.items():
        found = tshark_fields(out, "frame.number",
                              display_filter=f'frame.comment contains "rstdiag: {label}"')
        assert [int(row[0]) for row in found] == frames, label


def test_the_issues_own_filter_finds_the_accept_overflows(tmp_path: Path) -> None:
    out = tmp_path / "annotated.pcapng"
    path = PCAPS / "accept-overflow-loop.pcap"
    assert annotate(path, out).returncode == 0
    found = tshark_fields(out, "frame.number",
                          display_filter='frame.comment contains "accept-overflow"')
    assert [int(row[0]) for row in found] == read_labels(path)["accept-overflow"]


def test_wireshark_lists_the_comments_in_expert_info(tmp_path: Path) -> None:
    out = tmp_path / "annotated.pcapng"
    assert annotate(PCAPS / "accept-overflow.pcap", out).returncode == 0
    expert = subprocess.run(["tshark", "-r", str(out), "-q", "-z", "expert,comment"],
                            capture_output=True, text=True, check=True).stdout
    comments = expert.split("Comments (", 1)[1]
    count, rows = comments.split(")", 1)
    assert int(count) == len(read_labels(PCAPS / "accept-overflow.pcap")["accept-overflow"])
    assert "Comment              Frame  rstdiag: accept-overflow (high confidence)" in rows


def test_comments_the_capture_had_are_kept(tmp_path: Path) -> None:
    path = PCAPS / "closed-port-v4.pcap"
    [rst] = analyze_file(str(path)).verdicts
    commented = tmp_path / "commented.pcapng"
    subprocess.run(["editcap", "-a", f"{rst.frame}:seen by the on-call", "-a", "1:the SYN",
                    str(path), str(commented)], check=True, capture_output=True)
    out = tmp_path / "annotated.pcapng"
    assert annotate(commented, out).returncode == 0
    rows = {int(n): c.split(SEP) for n, c in tshark_fields(out, "frame.number",
                                                              "frame.comment",
                                                              display_filter="frame.comment")}
    assert rows == {1: ["the SYN"], rst.frame: ["seen by the on-call", comment_text(rst)]}


def exchange(client: str, server: str, port: int) -> list[bytes]:
    """A SYN to a closed port and its RST+ACK, as Ethernet frames."""
    return [bytes(Ether() / IP(src=client, dst=server) / TCP(sport=port, dport=9, flags="S",
                                                             seq=100)),
            bytes(Ether() / IP(src=server, dst=client) / TCP(sport=9, dport=port, flags="RA",
                                                             ack=101))]


def test_sections_of_both_byte_orders_keep_their_blocks(tmp_path: Path) -> None:
    tsresol = option(9, b"\x09", ">")
    first = exchange("192.0.2.1", "198.51.100.7", 40000)
    second = exchange("192.0.2.2", "198.51.100.7", 40001)
    capture = (section_header(">") + interface_description(1, 0, tsresol, ">")
               + enhanced_packet(0, 1_700_000_000_123_456_789, first[0], len(first[0]),
                                 option(1, b"kept", ">"), ">")
               + enhanced_packet(0, 1_700_000_000_223_456_789, first[1], len(first[1]),
                                 order=">")
               + section_header() + interface_description(1, 0)
               + enhanced_packet(0, 1_700_000_001_000_000, second[0], len(second[0]))
               + enhanced_packet(0, 1_700_000_001_100_000, second[1], len(second[1])))
    path = tmp_path / "two-sections.pcapng"
    path.write_bytes(capture)
    out = tmp_path / "annotated.pcapng"
    assert annotate(path, out).returncode == 0
    assert tshark_frames(out) == tshark_frames(path)
    comments = tshark_fields(out, "frame.number", "frame.comment", display_filter="frame.comment")
    assert [(row[0], row[1].split(SEP)[0]) for row in comments] == [
        ("1", "kept"), ("2", comment_text(analyze_file(str(path)).verdicts[0])),
        ("4", comment_text(analyze_file(str(path)).verdicts[1]))]


def test_a_cut_capture_is_written_as_far_as_it_was_read(tmp_path: Path) -> None:
    whole = (PCAPS / "data-after-close.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(whole[:-10])
    out = tmp_path / "annotated.pcapng"
    run = annotate(path, out)
    assert run.returncode == 0
    assert "damaged or cut record" in run.stderr
    read = analyze_file(str(path))
    assert len(tshark_frames(out)[0]) == read.frames


def test_the_summary_line_names_the_output_and_the_comments(tmp_path: Path) -> None:
    out = tmp_path / "annotated.pcapng"
    run = annotate(PCAPS / "half-open.pcap", out)
    assert run.stdout == f"{out}: 9 frames from {PCAPS / 'half-open.pcap'} (pcap), " \
        "1 RST commented: half-open 1\n"


@pytest.mark.parametrize("args, message", [
    (["-", "-w", "x.pcapng"], "give a file, not standard input"),
    ([str(PCAPS / "README.md"), "-w", "x.pcapng"], "not a pcap or pcapng file"),
    (["missing.pcap", "-w", "x.pcapng"], "missing.pcap"),
])
def test_what_cannot_be_annotated_is_one_error_line_and_status_2(
        args: list[str], message: str, tmp_path: Path) -> None:
    run = subprocess.run(["rstdiag", "annotate", *args], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1 and message in run.stderr
    assert not (tmp_path / "x.pcapng").exists()


def test_the_input_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "in.pcap"
    path.write_bytes((PCAPS / "half-open.pcap").read_bytes())
    run = annotate(path, path)
    assert run.returncode == 2 and "is the input capture" in run.stderr
    assert path.read_bytes() == (PCAPS / "half-open.pcap").read_bytes()


def test_an_output_that_cannot_be_written_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "no-such-dir" / "annotated.pcapng"
    run = annotate(PCAPS / "half-open.pcap", out)
    assert run.returncode == 2 and "No such file or directory" in run.stderr
    assert len(run.stderr.splitlines()) == 1
