"""A tiny network lab of Linux namespaces for real-kernel RST scenarios.

Topology of every lab (all names unique to the run, torn down on close):

    <tag>-cli  eth0 --- eth0  <tag>-rtr  eth1 --- eth0  <tag>-srv
    198.18.B.1/24       198.18.B.254  198.19.B.254      198.19.B.1/24
    2001:db8:B:1::1/64  ...:1::fe     ...:2::fe         2001:db8:B:2::1/64

B is a block number unique among the labs alive on this machine (lock files), so that labs
running at the same time (threads, or another test run) never share addresses: the
`tcp:tcp_send_reset` tracepoint fires system-wide and is filtered by address.

Everything runs inside the namespaces (`ip netns exec NS ...` / `ip -n NS ...`); nothing
here touches the host's interfaces, routes, firewall or sysctls. Also here: a tcpdump
wrapper, a private tracefs instance recording the kernel's reason for each RST it sends,
and a minimal pcap reader for TCP segments (independent of rstdiag, to check it).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import os
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
RST_EVENT = Path("events/tcp/tcp_send_reset")
SCENARIOS_PY = Path(__file__).with_name("scenarios.py")
BLOCK_DIR = Path(tempfile.gettempdir()) / "rstdiag-netlab-blocks"

_counter = itertools.count(1)
_lock = threading.Lock()


class LabError(RuntimeError):
    """A lab command failed or a scenario step timed out."""


# --------------------------------------------------------------------------- availability


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def netns_unavailable() -> str | None:
    """Why real-kernel scenarios cannot run here, or None if they can."""
    if sys.platform != "linux":
        return "needs Linux network namespaces"
    if os.geteuid() != 0:
        return "needs root (ip netns, veth, tcpdump)"
    for tool in ("ip", "tcpdump", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool} on PATH"
    if not _works(["ip", "netns", "list"]):
        return "`ip netns` does not work here"
    return None


def tracing_unavailable() -> str | None:
    """Why the tcp:tcp_send_reset tracepoint cannot be read, or None if it can."""
    if not (TRACEFS / RST_EVENT).exists():
        if not (TRACEFS / "events").exists():
            with contextlib.suppress(OSError):
                subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                               capture_output=True, timeout=10)
        if not (TRACEFS / RST_EVENT).exists():
            return f"no {TRACEFS / RST_EVENT} (kernel older than 6.x or tracefs missing)"
    if not os.access(TRACEFS / "instances", os.W_OK):
        return f"cannot create tracefs instances under {TRACEFS / 'instances'}"
    return None


# --------------------------------------------------------------------------- processes


class Proc:
    """A process started by the lab, its stdout/stderr read line by line in threads."""

    def __init__(self, args: list[str], name: str, stdin: bool = True) -> None:
        self.args = args
        self.name = name
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: queue.Queue[str | None] = queue.Queue()
        self.stdout_log: list[str] = []
        self.stderr_log: list[str] = []
        self.popen = subprocess.Popen(
            args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        for stream, q, log in ((self.popen.stdout, self.lines, self.stdout_log),
                               (self.popen.stderr, self.errors, self.stderr_log)):
            threading.Thread(target=self._pump, args=(stream, q, log), daemon=True).start()

    @staticmethod
    def _pump(stream, q: queue.Queue[str | None], log: list[str]) -> None:
        for line in stream:
            log.append(line.rstrip("\n"))
            q.put(line.rstrip("\n"))
        q.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _next(self, q: queue.Queue[str | None], prefix: str, timeout: float, what: str,
              anywhere: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = q.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise LabError(f"{self.name}: no {what} line with {prefix!r} within "
                               f"{timeout}s; stderr: {self.stderr_log[-5:]}") from None
            if line is None:
                q.put(None)  # keep EOF visible to later readers
                raise LabError(f"{self.name}: exited (rc={self.popen.poll()}) before "
                               f"{prefix!r}; stderr: {self.stderr_log[-5:]}")
            if line.startswith(prefix) or (anywhere and prefix in line):
                return line

    def expect(self, prefix: str = "", timeout: float = 10.0) -> str:
        """The next stdout line starting with `prefix` (earlier lines are skipped)."""
        return self._next(self.lines, prefix, timeout, "stdout")

    def expect_err(self, text: str, timeout: float = 10.0) -> str:
        """The next stderr line containing `text`."""
        return self._next(self.errors, text, timeout, "stderr", anywhere=True)

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()

    def cmd(self, line: str, timeout: float = 10.0) -> str:
        """Send one command to a scenario role and return its one-line answer."""
        self.send(line)
        return self.expect("", timeout)

    def wait(self, timeout: float = 10.0) -> int:
        return self.popen.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 1.0) -> None:
        """End the process (this one, by its pid) if it still runs."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(5)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


# --------------------------------------------------------------------------- address blocks


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_block(prefer: int | None) -> int:
    """A block number 1..250 no other live lab on this machine holds (lock file per block)."""
    BLOCK_DIR.mkdir(parents=True, exist_ok=True)
    start = prefer if prefer is not None else (os.getpid() * 7) % 250 + 1
    for i in range(250):
        block = (start - 1 + i) % 250 + 1
        path = BLOCK_DIR / str(block)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = int(path.read_text() or "0")
            except (OSError, ValueError):
                continue
            if owner and not _pid_alive(owner):  # stale: its run died without cleanup
                with contextlib.suppress(OSError):
                    path.unlink()
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    continue
            else:
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return block
    raise LabError("no free address block (250 labs alive?)")


def _release_block(block: int) -> None:
    with contextlib.suppress(OSError):
        (BLOCK_DIR / str(block)).unlink()


# --------------------------------------------------------------------------- the lab


@dataclass(frozen=True, slots=True)
class Host:
    ns: str
    v4: str
    v6: str


class Lab:
    """Three namespaces (client, router, server) wired with veth pairs; see module doc.

    Use as a context manager: setup on enter, teardown (processes, namespaces, address block)
    on exit, also when the scenario fails.
    """

    def __init__(self, name: str = "lab", block: int | None = None) -> None:
        with _lock:
            n = next(_counter)
        self.name = name
        self.tag = f"rd-{os.getpid()}-{n}"
        self._prefer = block
        self.block = 0
        self.procs: list[Proc] = []
        self.namespaces: list[str] = []
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))

    # addresses -------------------------------------------------------------------------
    def _hosts(self) -> None:
        b = self.block
        self.cli = Host(f"{self.tag}-cli", f"198.18.{b}.1", f"2001:db8:{b:x}:1::1")
        self.srv = Host(f"{self.tag}-srv", f"198.19.{b}.1", f"2001:db8:{b:x}:2::1")
        self.rtr = Host(f"{self.tag}-rtr", f"198.18.{b}.254", f"2001:db8:{b:x}:1::fe")
        self.rtr_srv_side = Host(self.rtr.ns, f"198.19.{b}.254", f"2001:db8:{b:x}:2::fe")

    def addresses(self) -> set[str]:
        hosts = (self.cli, self.srv, self.rtr, self.rtr_srv_side)
        return {str(ipaddress.ip_address(a)) for h in hosts for a in (h.v4, h.v6)}

    # setup / teardown ------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        self.block = _claim_block(self._prefer)
        self._hosts()
        for host in (self.cli, self.rtr, self.srv):
            self.run_host(["ip", "netns", "add", host.ns])
            self.namespaces.append(host.ns)
            # before any interface exists, so that v6 addresses are usable at once
            self.sysctl(host.ns, "net.ipv6.conf.all.accept_dad", "0")
            self.sysctl(host.ns, "net.ipv6.conf.default.accept_dad", "0")
            self.sysctl(host.ns, "net.ipv6.conf.default.accept_ra", "0")
            self.ip(host.ns, "link", "set", "lo", "up")
        # veth pairs created inside the namespaces; their names never exist on the host
        self.ip(self.cli.ns, "link", "add", "name", "eth0", "type", "veth",
                "peer", "name", "eth0", "netns", self.rtr.ns)
        self.ip(self.srv.ns, "link", "add", "name", "eth0", "type", "veth",
                "peer", "name", "eth1", "netns", self.rtr.ns)
        links = ((self.cli.ns, "eth0"), (self.rtr.ns, "eth0"), (self.rtr.ns, "eth1"),
                 (self.srv.ns, "eth0"))
        for ns, dev in links:
            # one MSS per skb: the capture shows wire-sized segments, not 64 KB GSO blobs
            self.ip(ns, "link", "set", "dev", dev, "gso_max_segs", "1", "up")
        self.sysctl(self.rtr.ns, "net.ipv4.ip_forward", "1")
        self.sysctl(self.rtr.ns, "net.ipv6.conf.all.forwarding", "1")
        for host, dev, v4len, v6len in ((self.cli, "eth0", 24, 64), (self.srv, "eth0", 24, 64),
                                        (self.rtr, "eth0", 24, 64),
                                        (self.rtr_srv_side, "eth1", 24, 64)):
            self.ip(host.ns, "addr", "add", f"{host.v4}/{v4len}", "dev", dev)
            self.ip(host.ns, "-6", "addr", "add", f"{host.v6}/{v6len}", "dev", dev, "nodad")
        for host, gw in ((self.cli, self.rtr), (self.srv, self.rtr_srv_side)):
            self.ip(host.ns, "route", "add", "default", "via", gw.v4)
            self.ip(host.ns, "-6", "route", "add", "default", "via", gw.v6)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        for ns in self.namespaces:
            # anything still running inside our namespaces was started by this lab
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in out.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        if self.block:
            _release_block(self.block)
            self.block = 0
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    # running things --------------------------------------------------------------------
    def run_host(self, args: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run a command (only lab-management ones: ip netns add/del)."""
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise LabError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
        return out

    def ip(self, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run_host(["ip", "-n", ns, *args])

    def run(self, ns: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run a command inside namespace `ns`, raise LabError if it fails."""
        return self.run_host(["ip", "netns", "exec", ns, *args], timeout=timeout)

    def sysctl(self, ns: str, key: str, value: str) -> None:
        self.run(ns, "sysctl", "-q", "-w", f"{key}={value}")

    def nft(self, ns: str, ruleset: str) -> None:
        """Load an nftables ruleset into namespace `ns` (through a file, never a shell)."""
        path = self.tmpdir / f"nft-{next(_counter)}.nft"
        path.write_text(ruleset)
        self.run(ns, "nft", "-f", str(path))

    def popen(self, ns: str, *args: str, name: str = "", stdin: bool = True) -> Proc:
        proc = Proc(["ip", "netns", "exec", ns, *args], name or f"{ns}:{args[0]}", stdin)
        self.procs.append(proc)
        return proc

    def role(self, ns: str, role: str, *args: object) -> Proc:
        """Start `python3 tests/scenarios.py ROLE ARGS...` inside namespace `ns`."""
        return self.popen(ns, sys.executable, "-u", str(SCENARIOS_PY), role,
                          *map(str, args), name=f"{ns.rsplit('-', 1)[-1]}:{role}")

    def capture(self, ns: str, path: Path, iface: str = "eth0") -> Capture:
        return Capture(self, ns, iface, path)


# --------------------------------------------------------------------------- capture


class Capture:
    """tcpdump on one interface inside a namespace, writing a pcap file."""

    def __init__(self, lab: Lab, ns: str, iface: str, path: Path) -> None:
        self.lab, self.ns, self.iface, self.path = lab, ns, iface, Path(path)
        self.proc: Proc | None = None
        self.stats = ""

    def start(self, timeout: float = 10.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.proc = self.lab.popen(
            self.ns, "tcpdump", "-i", self.iface, "-w", str(self.path), "-U",
            "--immediate-mode", "-n", "-Z", "root", "tcp",
            name=f"tcpdump {self.ns}:{self.iface}", stdin=False)
        self.proc.expect_err("listening on", timeout)

    def stop(self, drain: float = 0.2) -> None:
        if self.proc is None:
            return
        time.sleep(drain)
        self.proc.stop(signal.SIGINT, grace=5.0)
        self.stats = "; ".join(line for line in self.proc.stderr_log if "packets" in line)
        self.proc = None


# --------------------------------------------------------------------------- kernel resets


@dataclass(frozen=True, slots=True)
class KernelReset:
    """One `tcp:tcp_send_reset` event: the kernel's own account of a RST it sent."""

    ts: float  # seconds since the epoch (converted from the trace's CLOCK_MONOTONIC)
    task: str  # the task that was running (often unrelated: softirq context)
    cpu: int
    src: str  # the RST's sender: from the socket if it had one, else the answered packet
    sport: int
    dst: str  # 0.0.0.0 / :: with port 0 for a listener's own RST
    dport: int
    state: str  # socket state, UNKNOWN when no socket
    reason: str  # enum sk_rst_reason, e.g. NO_SOCKET
    skaddr: str
    skbaddr: str

    @property
    def listener_reply(self) -> bool:
        """Reported with the listener's own address and an unspecified destination."""
        return self.dport == 0 and ipaddress.ip_address(self.dst).is_unspecified

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


_TRACE_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>\d+\.\d+):\s+"
    r"tcp_send_reset:\s+(?P<rest>.*)$")


def _split_endpoint(text: str) -> tuple[str, int]:
    if text.startswith("["):
        addr, _, port = text[1:].partition("]:")
    else:
        addr, _, port = text.rpartition(":")
    return str(ipaddress.ip_address(addr)), int(port)


def parse_trace(text: str, mono_to_epoch: float = 0.0) -> list[KernelReset]:
    """Parse tcp_send_reset lines of a tracefs `trace` file (other lines are ignored)."""
    out: list[KernelReset] = []
    for line in text.splitlines():
        m = _TRACE_LINE.match(line)
        if not m:
            continue
        fields = dict(kv.split("=", 1) for kv in m["rest"].split() if "=" in kv)
        src, sport = _split_endpoint(fields["src"])
        dst, dport = _split_endpoint(fields["dest"])
        out.append(KernelReset(
            ts=float(m["ts"]) + mono_to_epoch, task=m["task"].strip(), cpu=int(m["cpu"]),
            src=src, sport=sport, dst=dst, dport=dport, state=fields.get("state", ""),
            reason=fields.get("reason", ""), skaddr=fields.get("skaddr", ""),
            skbaddr=fields.get("skbaddr", "")))
    return out


class ResetTrace:
    """A private tracefs instance recording tcp:tcp_send_reset while a scenario runs."""

    def __init__(self, tag: str) -> None:
        self.path = TRACEFS / "instances" / f"rstdiag-{tag}"
        self.started = False

    def _write(self, rel: str, value: str) -> None:
        (self.path / rel).write_text(value)

    def start(self) -> None:
        self.path.mkdir()
        self.started = True
        with contextlib.suppress(OSError):
            self._write("buffer_size_kb", "256")
        with contextlib.suppress(OSError):  # timestamps comparable with time.monotonic()
            self._write("trace_clock", "mono")
        self._write(str(RST_EVENT / "enable"), "1")

    def read(self, addresses: set[str] | None = None) -> list[KernelReset]:
        """Events so far whose source or destination is one of `addresses` (all if None)."""
        offset = 0.0
        with contextlib.suppress(OSError):
            if "[mono]" in (self.path / "trace_clock").read_text():
                offset = time.time() - time.monotonic()
        resets = parse_trace((self.path / "trace").read_text(), offset)
        if addresses is None:
            return resets
        return [r for r in resets if r.src in addresses or r.dst in addresses]

    def close(self) -> None:
        if not self.started:
            return
        with contextlib.suppress(OSError):
            self._write(str(RST_EVENT / "enable"), "0")
        for _ in range(50):
            try:
                self.path.rmdir()
                break
            except OSError as e:  # EBUSY while a reader still has a file open
                if e.errno != errno.EBUSY:
                    break
                time.sleep(0.02)
        self.started = False


# --------------------------------------------------------------------------- pcap reading


@dataclass(frozen=True, slots=True)
class Segment:
    """A TCP segment of a capture (Ethernet, IPv4/IPv6 without extension headers)."""

    frame: int
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: str  # tcpdump letters: S F R P . (ACK)
    window: int
    length: int
    ttl: int
    ipid: int | None

    @property
    def rst(self) -> bool:
        return "R" in self.flags


def _flag_letters(bits: int) -> str:
    out = "".join(letter for bit, letter in ((2, "S"), (1, "F"), (4, "R"), (8, "P"), (32, "U"))
                  if bits & bit)
    return out + "." if bits & 16 else out or "none"


def _records(data: bytes) -> Iterator[tuple[float, bytes]]:
    """(time, bytes) of each packet of a classic pcap, or of a pcapng of one little- or
    big-endian section (as `rstdiag live -w --kernel-reasons` writes it) whose interfaces
    are Ethernet."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        units: list[float] = []
        pos = 0
        while pos + 12 <= len(data):
            btype, length = struct.unpack(endian + "II", data[pos:pos + 8])
            body = data[pos + 8:pos + length - 4]
            if btype == 1:
                linktype = struct.unpack(endian + "H", body[:2])[0]
                if linktype != 1:
                    raise ValueError(f"link type {linktype}, expected Ethernet")
                units.append(_ticks_per_second(body[8:], endian))
            elif btype == 6:
                iface, high, low, caplen = struct.unpack(endian + "IIII", body[:16])
                yield ((high << 32 | low) / units[iface], body[20:20 + caplen])
            pos += length
        return
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
              b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}[data[:4]]
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"link type {linktype}, expected Ethernet")
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        yield sec + frac / (1e9 if nano else 1e6), data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen


def _ticks_per_second(options: bytes, endian: str) -> float:
    """An interface's timestamp units, from its if_tsresol option (code 9; default µs)."""
    pos = 0
    while pos + 4 <= len(options):
        code, size = struct.unpack(endian + "HH", options[pos:pos + 4])
        if code == 0:
            break
        if code == 9 and size == 1:
            res = options[pos + 4]
            return float(2 ** (res & 0x7F) if res & 0x80 else 10 ** res)
        pos += 4 + (size + 3) // 4 * 4
    return 1e6


def read_segments(path: Path) -> list[Segment]:
    """The TCP segments of a capture written by tcpdump (classic pcap) or `rstdiag live -w`
    (pcap, or pcapng) on a veth (Ethernet)."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return []
    out: list[Segment] = []
    try:
        records = list(_records(data))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    for frame, (ts, pkt) in enumerate(records, start=1):
        ethertype = struct.unpack("!H", pkt[12:14])[0]
        ip = pkt[14:]
        if ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 6:
                continue
            total, ipid = struct.unpack("!HH", ip[2:6])
            ttl = ip[8]
            src, dst = ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
            tcp, payload_room = ip[ihl:], total - ihl
        elif ethertype == 0x86DD:
            if ip[6] != 6:
                continue
            plen = struct.unpack("!H", ip[4:6])[0]
            ttl, ipid = ip[7], None
            src, dst = ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
            tcp, payload_room = ip[40:], plen
        else:
            continue
        sport, dport, seq, ack, off, flags, window = struct.unpack("!HHIIBBH", tcp[:16])
        hlen = (off >> 4) * 4
        out.append(Segment(frame, ts, str(src), sport, str(dst), dport, seq, ack,
                           _flag_letters(flags), window, payload_room - hlen, ttl, ipid))
    return out


def match_resets(resets: list[KernelReset], segments: list[Segment], tolerance: float = 0.1
                 ) -> tuple[list[tuple[KernelReset, Segment | None]], list[Segment]]:
    """Pair each kernel reset with the RST it put on the wire.

    A wire RST matches a kernel reset when it has the same sender address and port, the same
    destination (any, for a listener's own RST, which the tracepoint reports with destination
    0.0.0.0:0), and was captured within `tolerance` seconds of the event (the two clocks agree
    to microseconds); among several, the earliest not yet taken. Returns the pairs (segment
    None: not on the wire, e.g. dropped by a firewall) and the wire RSTs no kernel reset
    explains (forged in the path, or sent by a host outside this trace).
    """
    rsts = [s for s in segments if s.rst]
    taken: set[int] = set()
    pairs: list[tuple[KernelReset, Segment | None]] = []
    for r in sorted(resets, key=lambda r: r.ts):
        found = None
        for s in rsts:
            if s.frame in taken or (s.src, s.sport) != (r.src, r.sport):
                continue
            if not r.listener_reply and (s.dst, s.dport) != (r.dst, r.dport):
                continue
            if abs(s.ts - r.ts) <= tolerance:
                found = s
                break
        if found is not None:
            taken.add(found.frame)
        pairs.append((r, found))
    return pairs, [s for s in rsts if s.frame not in taken]
