"""Packets from a live Linux interface: an AF_PACKET socket with a TPACKET_V3 ring.

The kernel runs the BPF filter (compiled by tcpdump from `tcp and (EXPR)`) and copies each
packet that passes, cut to the snapshot length, into a ring of blocks shared with the process
by mmap: no system call per packet, and the ring absorbs bursts while the analysis catches up.
This module sets the socket up (and says in one line why it cannot); the engine maps the ring
and reads it (src/live/ring.rs), with no Python step per packet.
Packets that find the ring full are dropped by the kernel and counted (PACKET_STATISTICS).

Link types: Ethernet and loopback interfaces are read as they are (LINKTYPE_ETHERNET); every
other interface (tun, WireGuard, PPP, GRE, ...) and `any` in cooked mode, with a Linux SLL
header built from the kernel's packet address (LINKTYPE_LINUX_SLL), as libpcap does.

Linux only, standard library only (ctypes just to hand the filter's address to the kernel).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass

from .errors import RstdiagError

LINKTYPE_ETHERNET = 1  # pcap link types of what the ring gives: Ethernet and loopback devices
LINKTYPE_LINUX_SLL = 113  # every other device, and "any", with a cooked header built here
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SIOCGIFFLAGS = 0x8913
SIOCGIFHWADDR = 0x8927
IFF_UP = 0x1
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8

DEFAULT_SNAPLEN = 262144  # tcpdump's: whole packets
DEFAULT_BUFFER_KIB = 64 * 1024
BLOCK_SIZE = 1 << 20  # one ring block; the kernel hands over full blocks, or after BLOCK_TIMEOUT
BLOCK_TIMEOUT_MS = 50
PRIVILEGE_HINT = ("capture needs root or CAP_NET_RAW: run with sudo or setcap "
                  "cap_net_raw,cap_net_admin+eip $(which python3)")

_STATS = struct.Struct("=III")  # tpacket_stats_v3: tp_packets, tp_drops, tp_freeze_q_cnt
_INSN = struct.Struct("=HBBI")  # struct sock_filter



class LiveCaptureError(RstdiagError):
    """Capture cannot start (no such interface, interface down, no privilege, bad filter)."""


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    index: int  # 0 for `any`
    hatype: int  # ARPHRD_*
    cooked: bool  # read without link headers (SOCK_DGRAM), SLL headers built for the pcap

    @property
    def linktype(self) -> int:
        return LINKTYPE_LINUX_SLL if self.cooked else LINKTYPE_ETHERNET

    @property
    def linktype_name(self) -> str:
        return "LINUX_SLL (Linux cooked v1)" if self.cooked else "EN10MB (Ethernet)"


def _ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock, request, struct.pack("16s24x", name.encode()))


def lookup_interface(name: str) -> Interface:
    """The interface to capture on; LiveCaptureError if it does not exist or is down."""
    if sys.platform != "linux":
        raise LiveCaptureError("live capture works on Linux only (AF_PACKET sockets)")
    if name == "any":
        return Interface("any", 0, 0, cooked=True)
    try:
        index = socket.if_nametoindex(name)
    except OSError:
        names = ", ".join(n for _, n in socket.if_nameindex())
        raise LiveCaptureError(f"no such interface {name!r}: choose one of {names} "
                               "(`ip link` lists them), or `any`") from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            flags = struct.unpack_from("=H", _ifreq(probe, SIOCGIFFLAGS, name), 16)[0]
            hatype = struct.unpack_from("=H", _ifreq(probe, SIOCGIFHWADDR, name), 16)[0]
        except OSError as exc:
            raise LiveCaptureError(f"interface {name}: {exc.strerror}") from None
    if not flags & IFF_UP:
        raise LiveCaptureError(f"interface {name} is down: bring it up with "
                               f"`ip link set {name} up`, or capture on another one")
    return Interface(name, index, hatype, cooked=hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK))


def loopback_index() -> int | None:
    """The ifindex of the loopback interface, whose packets AF_PACKET sees twice."""
    for index, name in socket.if_nameindex():
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET,
                                                         socket.SOCK_DGRAM) as probe:
            hatype = struct.unpack_from("=H", _ifreq(probe, SIOCGIFHWADDR, name), 16)[0]
            if hatype == ARPHRD_LOOPBACK:
                return index
    return None


# ----------------------------------------------------------------------------- BPF


def filter_expression(user: str | None) -> str:
    """rstdiag's own `tcp`, combined with the user's expression."""
    user = (user or "").strip()
    return f"tcp and ({user})" if user else "tcp"


def compile_filter(expression: str, cooked: bool, snaplen: int) -> list[tuple[int, int, int, int]]:
    """Compile a pcap-filter expression to classic BPF with `tcpdump -ddd`.

    Compiled against an empty capture of the socket's view of the packets (Ethernet, or raw
    IP for cooked sockets, which see packets from the network header on), so no interface or
    privilege is needed. The filter's accept value is the snapshot length.
    """
    tcpdump = shutil.which("tcpdump") or next(
        (p for p in ("/usr/sbin/tcpdump", "/usr/bin/tcpdump", "/sbin/tcpdump")
         if os.access(p, os.X_OK)), None)
    if tcpdump is None:
        raise LiveCaptureError("compiling the BPF filter needs tcpdump: install it "
                               "(apt-get install tcpdump)")
    linktype = 101 if cooked else LINKTYPE_ETHERNET  # LINKTYPE_RAW for cooked sockets
    empty = struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    try:
        out = subprocess.run([tcpdump, "-r", "-", "-ddd", expression], input=empty,
                             capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LiveCaptureError(f"cannot run tcpdump to compile the filter: {exc}") from None
    if out.returncode != 0:
        lines = [ln.strip() for ln in out.stderr.decode(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("reading from")]
        why = lines[-1].removeprefix("tcpdump: ") if lines else f"status {out.returncode}"
        raise LiveCaptureError(f"bad filter {expression!r}: {why} (syntax: man pcap-filter)")
    words = out.stdout.decode().split()
    try:
        n = int(words[0])
        numbers = [int(w) for w in words[1:]]
    except (IndexError, ValueError):
        raise LiveCaptureError(f"tcpdump gave no BPF program for {expression!r}") from None
    program = [tuple(numbers[i:i + 4]) for i in range(0, 4 * n, 4)]
    return program  # type: ignore[return-value]


def skip_outgoing_loopback(program: list[tuple[int, int, int, int]],
                           lo_index: int | None) -> list[tuple[int, int, int, int]]:
    """Prefix a program so that it rejects packets going out of the loopback interface.

    On `lo` every packet passes twice, out and back in: libpcap keeps the incoming copy only,
    and so does this. `lo_index` None: the socket is bound to `lo` itself.
    """
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    pkttype = (ld_w_abs, 0, 0, (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF)
    outgoing = (jeq_k, 0, 1, PACKET_OUTGOING)  # yes: next (reject); no: skip it
    reject = (ret_k, 0, 0, 0)
    prefix = [pkttype, outgoing, reject]
    if lo_index is not None:
        ifindex = (ld_w_abs, 0, 0, (SKF_AD_OFF + SKF_AD_IFINDEX) & 0xFFFFFFFF)
        on_lo = (jeq_k, 0, len(prefix), lo_index)  # not lo: straight to the program
        prefix = [ifindex, on_lo, *prefix]
    return prefix + program


# ----------------------------------------------------------------------------- the socket


class LiveCapture:
    """One AF_PACKET socket with a TPACKET_V3 receive ring, bound to one interface (or any).

    The engine maps the ring and reads it on a thread of its own (`rstdiag._core.LiveSession`
    with `fileno()`, `block_size`, `blocks`); `stats()` gives packets received and dropped
    so far.
    """

    def __init__(self, iface: Interface, program: list[tuple[int, int, int, int]], *,
                 buffer_bytes: int = DEFAULT_BUFFER_KIB * 1024, promiscuous: bool = True) -> None:
        self.iface = iface
        self.received = 0  # as the kernel counts them: passed the filter (incl. dropped)
        self.dropped = 0
        self._sock: socket.socket | None = None
        self._filter_buf: ctypes.Array[ctypes.c_char] | None = None
        try:
            self._open(program, buffer_bytes, promiscuous)
        except BaseException:
            self.close()
            raise

    def _open(self, program: list[tuple[int, int, int, int]], buffer_bytes: int,
              promiscuous: bool) -> None:
        kind = socket.SOCK_DGRAM if self.iface.cooked else socket.SOCK_RAW
        # Protocol 0: no packet comes in before the filter and the ring are in place and the
        # socket is bound. `any` cannot be bound (Python names interfaces, `any` has index 0):
        # its socket takes every protocol from the start, and what comes before the ring waits
        # in the socket's ordinary queue, never read.
        proto = 0 if self.iface.index else socket.htons(ETH_P_ALL)
        try:
            sock = socket.socket(socket.AF_PACKET, kind, proto)
        except PermissionError:
            raise LiveCaptureError(PRIVILEGE_HINT) from None
        except OSError as exc:
            raise LiveCaptureError(f"cannot open a packet socket: {exc.strerror}") from None
        self._sock = sock
        self._attach(program)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        size = max(buffer_bytes // BLOCK_SIZE, 2) * BLOCK_SIZE
        while True:
            blocks = size // BLOCK_SIZE
            frame = 2048
            req = struct.pack("=7I", BLOCK_SIZE, blocks, frame, blocks * (BLOCK_SIZE // frame),
                              BLOCK_TIMEOUT_MS, 0, 0)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
                break
            except OSError as exc:
                if exc.errno != errno.ENOMEM or size <= 4 * BLOCK_SIZE:
                    raise LiveCaptureError(f"cannot set up a {size >> 20} MiB capture ring: "
                                           f"{exc.strerror}; try a smaller -B") from None
                size //= 2
        self.ring_bytes = size
        self._blocks = size // BLOCK_SIZE
        if promiscuous and self.iface.index:
            mreq = struct.pack("=iHH8s", self.iface.index, PACKET_MR_PROMISC, 0, b"")
            with contextlib.suppress(OSError):  # not fatal: the host's own traffic still shows
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        try:
            if self.iface.index:
                sock.bind((self.iface.name, ETH_P_ALL))
        except OSError as exc:
            if exc.errno == errno.ENETDOWN:
                raise LiveCaptureError(f"interface {self.iface.name} is down: bring it up with "
                                       f"`ip link set {self.iface.name} up`") from None
            raise LiveCaptureError(f"cannot capture on {self.iface.name}: "
                                   f"{exc.strerror}") from None

    def _attach(self, program: list[tuple[int, int, int, int]]) -> None:
        assert self._sock is not None
        code = b"".join(_INSN.pack(*insn) for insn in program)
        self._filter_buf = ctypes.create_string_buffer(code, len(code))
        fprog = struct.pack("HL", len(program), ctypes.addressof(self._filter_buf))
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        except OSError as exc:
            raise LiveCaptureError(f"the kernel refused the BPF filter: {exc.strerror}") from None

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    @property
    def block_size(self) -> int:
        return BLOCK_SIZE

    @property
    def blocks(self) -> int:
        return self._blocks

    def stats(self) -> tuple[int, int]:
        """(packets that passed the filter, of which dropped for want of ring space) so far."""
        if self._sock is not None:
            with contextlib.suppress(OSError):  # the kernel resets its counters on each read
                packets, drops, _ = _STATS.unpack(
                    self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size))
                self.received += packets
                self.dropped += drops
        return self.received, self.dropped

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
