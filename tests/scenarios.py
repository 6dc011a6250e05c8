"""Real-kernel RST scenarios (the seed scenarios of shared/docs/causes.md) and their socket roles.

Two halves:

* socket roles, run inside a lab namespace as `python3 tests/scenarios.py ROLE ARGS...`
  (stdlib only). The `peer` role holds one connection and obeys one-line commands on stdin
  (`accept`, `send 10`, `recv 10`, `abort`, ...), answering each with one line on stdout, so
  the harness drives both ends of a connection step by step without sleeps;
* the harness: one function per scenario that builds a lab (tests/netlab.py), captures with
  tcpdump, records the kernel's reasons from `tcp:tcp_send_reset`, and returns a
  ScenarioResult. `run_scenario(name, outdir)` runs one; `start_scenarios` runs several in
  threads, each in its own lab.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import random
import select
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

PORT = 8080
TCP_INFO_STATE_CLOSE = 7


# =============================================================================== socket roles


def _say(*words: object) -> None:
    print(*words, flush=True)


def _err(e: OSError) -> str:
    return "ERR " + errno.errorcode.get(e.errno or 0, str(e.errno))


def _family(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _opts(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args)


def _linger0(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _listener(addr: str, port: int, backlog: int, defer: int = 0) -> socket.socket:
    lsock = socket.socket(_family(addr), socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if defer:
        lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer)
    lsock.bind((addr, port))
    lsock.listen(backlog)
    return lsock


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def _peer_command(words: list[str], conn: socket.socket | None,
                  lsock: socket.socket | None) -> tuple[str, socket.socket | None]:
    """Run one command of the `peer` role; its answer line and the connection after it."""
    cmd, args = words[0], words[1:]
    if cmd == "accept":
        assert lsock is not None
        conn, _ = lsock.accept()
        return f"ACCEPTED {conn.getpeername()[1]}", conn
    if cmd == "unlisten":  # the service goes away: no listener left on the port
        assert lsock is not None
        lsock.close()
        return "UNLISTENED", conn
    if cmd == "sleep":
        time.sleep(float(args[0]))
        return "SLEPT", conn
    assert conn is not None, "no connection"
    if cmd == "send":
        conn.sendall(b"x" * int(args[0]))
        return f"SENT {args[0]}", conn
    if cmd in ("recv", "recvsome"):  # recv: exactly N bytes (or EOF / timeout); recvsome: 1 call
        want, got = int(args[0]), 0
        conn.settimeout(float(args[1]) if len(args) > 1 else 10.0)
        try:
            while got < want:
                chunk = conn.recv(want - got)
                got += len(chunk)
                if not chunk:
                    return f"EOF {got}", conn
                if cmd == "recvsome":
                    break
        except TimeoutError:
            return f"TIMEOUT {got}", conn
        finally:
            conn.settimeout(None)
        return f"RECV {got}", conn
    if cmd == "waitreset":  # until the kernel closed the socket (RST, timeout), no reading
        deadline = time.monotonic() + float(args[0])
        while time.monotonic() < deadline:
            if _tcp_state(conn) == TCP_INFO_STATE_CLOSE:
                err = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                return f"CLOSED {errno.errorcode.get(err, err)}", conn
            time.sleep(0.01)
        return f"TIMEOUT state={_tcp_state(conn)}", conn
    if cmd == "close":
        conn.close()
        return "CLOSED", None
    if cmd == "abort":  # SO_LINGER {1, 0} then close: RST instead of FIN
        _linger0(conn)
        conn.close()
        return "ABORTED", None
    if cmd == "shutdown":
        conn.shutdown({"wr": socket.SHUT_WR, "rdwr": socket.SHUT_RDWR}[args[0]])
        return "SHUT", conn
    if cmd == "usertimeout":  # TCP_USER_TIMEOUT in ms: unacknowledged data gives up after it
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(args[0]))
        return "OK", conn
    if cmd == "get":  # one HTTP/1.1 request, the connection kept alive
        conn.sendall(b"GET / HTTP/1.1\r\nHost: rstdiag.test\r\n\r\n")
        return "SENT", conn
    if cmd == "nodelay":
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return "OK", conn
    if cmd == "keepalive":
        idle, intvl, cnt = (int(a) for a in args)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)
        return "OK", conn
    raise ValueError(f"unknown command {cmd!r}")


def role_peer(args: list[str]) -> None:
    """peer listen ADDR PORT [backlog=N] [defer=S] | peer connect ADDR PORT [timeout=S]."""
    mode, addr, port, opts = args[0], args[1], int(args[2]), _opts(args[3:])
    conn: socket.socket | None = None
    lsock: socket.socket | None = None
    if mode == "listen":
        lsock = _listener(addr, port, int(opts.get("backlog", "8")), int(opts.get("defer", "0")))
        _say("READY")
    else:
        conn = socket.socket(_family(addr), socket.SOCK_STREAM)
        conn.settimeout(float(opts.get("timeout", "10")))
        if opts.get("announce"):
            _say("CONNECTING")
        try:
            conn.connect((addr, port))
        except TimeoutError:
            conn.close()  # a SYN_SENT socket goes away silently
            _say("ERR TIMEOUT")
            conn = None
        except OSError as e:
            _say(_err(e))
            conn = None
        else:
            conn.settimeout(None)
            _say(f"CONNECTED {conn.getsockname()[1]}")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        try:
            answer, conn = _peer_command(words, conn, lsock)
        except OSError as e:
            answer = _err(e)
        _say(answer)


def role_overflow_clients(args: list[str]) -> None:
    """overflow-clients ADDR PORT N DELAY: N connections first, then data on each."""
    addr, port, n, delay = args[0], int(args[1]), int(args[2]), float(args[3])
    socks = []
    for _ in range(n):
        s = socket.socket(_family(addr), socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect((addr, port))
        except TimeoutError:  # the listener dropped the SYN: no RST to expect from it
            s.close()
            continue
        socks.append(s)
    _say("CONNECTED", len(socks))
    time.sleep(delay)
    for s in socks:
        s.send(b"GET / HTTP/1.0\r\n\r\n")
    time.sleep(0.2)
    for i, s in enumerate(socks):
        state = "reset" if _tcp_state(s) == TCP_INFO_STATE_CLOSE else "open"
        _say("RESULT", i, s.getsockname()[1], state)
    _say("DONE")
    sys.stdin.read()  # keep the sockets until told to quit


def role_slow_acceptor(args: list[str]) -> None:
    """slow-acceptor ADDR PORT BACKLOG SLEEP: accept(), sleep, read what came, close; loop."""
    addr, port, backlog, pause = args[0], int(args[1]), int(args[2]), float(args[3])
    lsock = _listener(addr, port, backlog)
    _say("READY")
    while True:
        conn, _ = lsock.accept()
        time.sleep(pause)
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass
        conn.close()


def role_loop_clients(args: list[str]) -> None:
    """loop-clients ADDR PORT THREADS SECONDS: connect, send, close as fast as possible."""
    addr, port, threads, seconds = args[0], int(args[1]), int(args[2]), float(args[3])
    stop = time.monotonic() + seconds
    counts = {"ok": 0, "reset": 0, "timeout": 0, "error": 0}
    lock = threading.Lock()

    def loop() -> None:
        while time.monotonic() < stop:
            s = socket.socket(_family(addr), socket.SOCK_STREAM)
            s.settimeout(max(stop - time.monotonic(), 0.05))
            try:
                s.connect((addr, port))
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                time.sleep(0.005)
                outcome = "reset" if _tcp_state(s) == TCP_INFO_STATE_CLOSE else "ok"
            except TimeoutError:
                outcome = "timeout"
            except OSError as e:
                outcome = "reset" if e.errno == errno.ECONNRESET else "error"
            finally:
                s.close()
            with lock:
                counts[outcome] += 1

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    _say("COUNTS", " ".join(f"{k}={v}" for k, v in counts.items()))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _raw_socket(dst: str) -> socket.socket:
    """A raw TCP socket: IPv4 takes our checksum, IPv6 computes it (IPV6_CHECKSUM)."""
    if _family(dst) == socket.AF_INET6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 16)
        return s
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)


def _raw_segment(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
                 options: bytes = b"", window: int = 64240) -> bytes:
    """A TCP header (no payload) ready for a raw socket to `dst`."""
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (5 + len(options) // 4) << 4,
                      flags, window, 0, 0)
    if _family(dst) == socket.AF_INET6:
        return hdr + options  # the kernel fills the checksum in
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(
        "!BBH", 0, socket.IPPROTO_TCP, len(hdr) + len(options))
    csum = _checksum(pseudo + hdr + options)
    return hdr[:16] + struct.pack("!H", csum) + hdr[18:] + options


def role_raw_syn(args: list[str]) -> None:
    """raw-syn SRC DST DPORT: one SYN from a raw socket (no socket of ours owns the flow)."""
    src, dst, dport = args[0], args[1], int(args[2])
    sport, seq = random.randint(40000, 60000), random.getrandbits(32)
    options = struct.pack("!BBH", 2, 4, 1460)  # MSS, like a scanner's SYN
    s = _raw_socket(dst)
    s.sendto(_raw_segment(src, dst, sport, dport, seq, 0, 0x02, options), (dst, 0))
    _say("SENT", sport, seq)
    # the kernel answers the SYN+ACK for us (with a RST); wait a moment for it to pass
    select.select([s], [], [], 0.3)


def role_syn_flood(args: list[str]) -> None:
    """syn-flood SRC DST DPORT N FIRSTPORT: N SYNs from ports FIRSTPORT.. as fast as we can."""
    src, dst, dport, n, first = args[0], args[1], int(args[2]), int(args[3]), int(args[4])
    options = struct.pack("!BBH", 2, 4, 1460)
    s = _raw_socket(dst)
    for i in range(n):
        s.sendto(_raw_segment(src, dst, first + i, dport, random.getrandbits(32), 0, 0x02,
                              options), (dst, 0))
    _say("FLOODED", n)


def role_raw_rst(args: list[str]) -> None:
    """raw-rst SRC DST SPORT DPORT SEQ: one bare RST with that sequence number."""
    src, dst, sport, dport, seq = args[0], args[1], int(args[2]), int(args[3]), int(args[4])
    s = _raw_socket(dst)
    s.sendto(_raw_segment(src, dst, sport, dport, seq % (1 << 32), 0, 0x04, window=0),
             (dst, 0))
    _say("SENT", sport, seq)


ROLES: dict[str, Callable[[list[str]], None]] = {
    "peer": role_peer,
    "overflow-clients": role_overflow_clients,
    "slow-acceptor": role_slow_acceptor,
    "loop-clients": role_loop_clients,
    "raw-syn": role_raw_syn,
    "syn-flood": role_syn_flood,
    "raw-rst": role_raw_rst,
}


# =============================================================================== harness

if __name__ != "__main__":  # the harness needs the lab; roles run with the stdlib only
    from netlab import (
        KernelReset,
        Lab,
        LabError,
        Proc,
        ResetTrace,
        Segment,
        read_segments,
        tracing_unavailable,
    )


@dataclass
class ScenarioResult:
    """What one scenario produced: the capture(s), the kernel's resets, what to expect."""

    name: str
    pcap: Path
    kernel_resets: list[KernelReset]
    expected: str
    client: str  # client and server addresses as on the wire
    server: str
    port: int
    extra_pcaps: dict[str, Path] = field(default_factory=dict)
    traced: bool = False  # kernel_resets is meaningful (the tracepoint was read)
    firewalled: int = 0  # kernel resets the scenario's own nft rule dropped before the wire
    forged_from: str | None = None  # address that forged (path) RSTs claim to come from
    topology: str = ""
    captured_at: dict[str, str] = field(default_factory=dict)  # pcap file name -> where
    log: list[str] = field(default_factory=list)  # each role's answers, in order
    seconds: float = 0.0
    attempts: int = 1  # 2 if the first run failed (step timed out, RSTs missing)


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: str
    body: Callable[[Run], None]
    v6: bool = False
    captures: tuple[tuple[str, str], ...] = (("", "cli"),)  # (file suffix, host), first primary
    firewalled: int = 0
    forged: bool = False
    # after the capture: the RSTs the scenario exists for (none -> LabError), from the
    # primary capture's segments
    check: Callable[[list[Segment], Run], list[Segment]] | None = None
    tools: tuple[str, ...] = ()  # programs it runs besides ip, tcpdump and nft

    def missing(self) -> list[str]:
        """The programs it needs that this host lacks."""
        return [tool for tool in self.tools if shutil.which(tool) is None]


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, expected: str, **kw: object) -> Callable[[Callable[[Run], None]], object]:
    def register(body: Callable[[Run], None]) -> Callable[[Run], None]:
        SCENARIOS[name] = Scenario(name, expected, body, **kw)  # type: ignore[arg-type]
        return body

    return register


class Run:
    """A scenario body's view of its lab: addresses, roles, and a log of their answers."""

    def __init__(self, lab: Lab, v6: bool) -> None:
        self.lab = lab
        self.v6 = v6
        self.client = lab.cli.v6 if v6 else lab.cli.v4
        self.server = lab.srv.v6 if v6 else lab.srv.v4
        self.log: list[str] = []
        self.pcaps: list[Path] = []  # the captures being written, the primary first

    def role(self, side: str, role: str, *args: object) -> Proc:
        ns = getattr(self.lab, side).ns
        return self.lab.role(ns, role, *args)

    def expect(self, proc: Proc, prefix: str = "", timeout: float = 10.0) -> str:
        line = proc.expect("", timeout)
        self.log.append(f"{proc.name}: {line}")
        if not line.startswith(prefix):
            raise LabError(f"{proc.name}: expected {prefix!r}, got {line!r}")
        return line

    def do(self, proc: Proc, command: str, want: str = "", timeout: float = 10.0) -> str:
        """Send a command to a role; check its answer starts with `want`."""
        self.log.append(f"{proc.name} <- {command}")
        proc.send(command)
        return self.expect(proc, want, timeout)

    def server_peer(self, **opts: object) -> Proc:
        srv = self.role("srv", "peer", "listen", self.server, PORT,
                        *(f"{k}={v}" for k, v in opts.items()))
        self.expect(srv, "READY")
        return srv

    def client_peer(self, want: str = "CONNECTED", **opts: object) -> Proc:
        cli = self.role("cli", "peer", "connect", self.server, PORT,
                        *(f"{k}={v}" for k, v in opts.items()))
        self.expect(cli, want)
        return cli

    def connected_pair(self, **server_opts: object) -> tuple[Proc, Proc]:
        srv = self.server_peer(**server_opts)
        cli = self.client_peer()
        self.do(srv, "accept", "ACCEPTED")
        return srv, cli

    def nft(self, side: str, ruleset: str) -> None:
        self.log.append(f"nft in {side}: {' '.join(ruleset.split())}")
        self.lab.nft(getattr(self.lab, side).ns, ruleset)

    def sysctl(self, side: str, key: str, value: str) -> None:
        self.log.append(f"sysctl in {side}: {key}={value}")
        self.lab.sysctl(getattr(self.lab, side).ns, key, value)


def _table(chain: str, hook: str, rule: str) -> str:
    return (f"table inet rstdiag {{\n  chain {chain} {{\n"
            f"    type filter hook {hook} priority filter; policy accept;\n"
            f"    {rule}\n  }}\n}}\n")


DROP_TABLE = "delete table inet rstdiag\n"

# ------------------------------------------------------------------------------- scenarios


@scenario("closed-port-v4", "SYN to a port nothing listens on: RST+ACK from the server "
          "(closed-port, kernel NO_SOCKET)")
def closed_port_v4(run: Run) -> None:
    cli = run.role("cli", "peer", "connect", run.server, PORT)
    run.expect(cli, "ERR ECONNREFUSED")


@scenario("closed-port-v6", "IPv6 SYN to a closed port: RST+ACK from the server "
          "(closed-port, kernel NO_SOCKET)", v6=True)
def closed_port_v6(run: Run) -> None:
    closed_port_v4(run)


@scenario("closed-port-retry", "SYN to a closed port whose RST is dropped on the client's "
          "input (nft in the client ns): the SYN is retried 1 s later with the same seq and "
          "gets an identical RST+ACK; both RSTs are on the wire (closed-port x2, NO_SOCKET x2)")
def closed_port_retry(run: Run) -> None:
    run.nft("cli", _table("input", "input", "tcp flags & rst == rst drop"))
    cli = run.role("cli", "peer", "connect", run.server, PORT, "announce=1")
    run.expect(cli, "CONNECTING")
    time.sleep(0.4)  # the first RST is dropped; the SYN retransmission is due at 1 s
    run.nft("cli", DROP_TABLE)
    run.expect(cli, "ERR ECONNREFUSED", timeout=5)


BACKLOG = 2


@scenario("accept-overflow", "tcp_abort_on_overflow=1, listen(1) + TCP_DEFER_ACCEPT, six "
          "clients connect then send 0.2 s later; the server never accepts: the data of the "
          "connections beyond the accept queue gets a bare RST from the listener "
          "(accept-overflow, kernel INVALID_SYN in TCP_LISTEN)")
def accept_overflow(run: Run) -> None:
    run.sysctl("srv", "net.ipv4.tcp_abort_on_overflow", "1")
    run.server_peer(backlog=BACKLOG, defer=5)
    cli = run.role("cli", "overflow-clients", run.server, PORT, 6, 0.2)
    n = int(run.expect(cli, "CONNECTED").split()[1])
    results = [run.expect(cli, "RESULT") for _ in range(n)]
    run.expect(cli, "DONE")
    if not any(r.endswith("reset") for r in results):
        raise LabError(f"accept-overflow: no connection was reset: {results}")


def _server_rsts(segments: list[Segment], run: Run) -> list[Segment]:
    return [s for s in segments if s.rst and s.src == run.server]


@scenario("accept-overflow-loop", "default sysctls; 8 client threads connect, send 18 bytes "
          "and close in a tight loop for 3.2 s against a server that accept()s, sleeps 100 ms, "
          "reads and closes (listen backlog 1). The accept queue fills at once, further SYNs "
          "are dropped and retried 1 s later; of the retried ones several get a SYN-cookie "
          "SYN+ACK, their ACK and data go unanswered (the queue is full) and the client's FIN "
          "gets a bare RST from the listener (accept-overflow, kernel TCP_FLAGS in TCP_LISTEN)",
          check=lambda segs, run: _server_rsts(segs, run))
def accept_overflow_loop(run: Run) -> None:
    srv = run.role("srv", "slow-acceptor", run.server, PORT, 1, 0.1)
    run.expect(srv, "READY")
    cli = run.role("cli", "loop-clients", run.server, PORT, 8, 3.2)
    run.expect(cli, "COUNTS", timeout=10)


@scenario("linger-abort", "server reads the 10-byte request, replies 100 bytes, the client "
          "reads and ACKs the reply, then the server closes with SO_LINGER {1,0}: RST+ACK from "
          "the server, everything acknowledged (linger-abort, kernel TCP_STATE in TCP_CLOSE)")
def linger_abort(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    run.do(srv, "send 100", "SENT")
    run.do(cli, "recv 100", "RECV 100")
    time.sleep(0.1)  # the client's ACK of the reply is on the wire
    run.do(srv, "abort", "ABORTED")
    run.do(cli, "waitreset 3", "CLOSED ECONNRESET")


@scenario("linger-noreply", "server reads the 10-byte request and closes with SO_LINGER "
          "{1,0} without replying: RST+ACK from the server (kernel TCP_STATE; on the wire it "
          "looks like unread-data: the request got no answer)")
def linger_noreply(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    time.sleep(0.05)
    run.do(srv, "abort", "ABORTED")
    run.do(cli, "waitreset 3", "CLOSED ECONNRESET")


@scenario("unread-data", "server reads 5 bytes of a 10-byte request and closes normally: "
          "RST+ACK instead of FIN (unread-data, kernel TCP_ABORT_ON_CLOSE)")
def unread_data(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recvsome 5", "RECV 5")
    run.do(srv, "close", "CLOSED")
    run.do(cli, "waitreset 3", "CLOSED ECONNRESET")


@scenario("unread-data-sigkill", "the server process is killed (SIGKILL) with the client's "
          "10-byte request unread in its socket: the kernel closes it with RST+ACK (unread-data "
          "with alternative linger-abort, kernel TCP_ABORT_ON_CLOSE)")
def unread_data_sigkill(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    time.sleep(0.05)  # the request is in the server's receive queue, acknowledged
    run.log.append(f"{srv.name} <- SIGKILL")
    srv.stop(signal.SIGKILL)
    run.do(cli, "waitreset 3", "CLOSED ECONNRESET")


@scenario("unread-data-sigkill-v6", "unread-data-sigkill over IPv6", v6=True)
def unread_data_sigkill_v6(run: Run) -> None:
    unread_data_sigkill(run)


@scenario("listener-closed", "a server listens (backlog 8) and never accept()s: two clients "
          "connect and stay queued, the first sends a 10-byte request; the service then closes "
          "its listener, whose queued connections get RST+ACK (kernel TCP_STATE: unread-data "
          "with alternative linger-abort for the one with a request, linger-abort with "
          "alternative unread-data for the other), and a client that tries again gets "
          "closed-port (NO_SOCKET); every one of them tells that the listener closed")
def listener_closed(run: Run) -> None:
    srv = run.server_peer()
    first = run.client_peer()
    run.do(first, "send 10", "SENT")
    second = run.client_peer()
    time.sleep(0.05)  # the request is acknowledged, both connections wait in the queue
    run.do(srv, "unlisten", "UNLISTENED")
    run.do(first, "waitreset 3", "CLOSED ECONNRESET")
    run.do(second, "waitreset 3", "CLOSED ECONNRESET")
    time.sleep(0.2)
    run.client_peer("ERR ECONNREFUSED")


@scenario("listener-closed-v6", "listener-closed over IPv6", v6=True)
def listener_closed_v6(run: Run) -> None:
    listener_closed(run)


@scenario("data-after-close", "server closes (FIN) right after accept; the client reads the "
          "EOF, 0.3 s later writes 10 bytes: bare RST from the server answering the data "
          "(data-after-close, kernel TCP_TIMEWAIT_SOCKET: orphaned FIN_WAIT2)")
def data_after_close(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(srv, "close", "CLOSED")
    run.do(cli, "recv 1", "EOF 0")
    time.sleep(0.3)
    run.do(cli, "send 10", "SENT")
    run.do(cli, "waitreset 3", "CLOSED")


@scenario("data-after-shutdown", "server shutdown(SHUT_RDWR) right after accept (FIN, socket "
          "kept open); the client reads the EOF and 0.3 s later writes 10 bytes: RST from the "
          "server answering the data (data-after-close, kernel TCP_ABORT_ON_DATA)")
def data_after_shutdown(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(srv, "shutdown rdwr", "SHUT")
    run.do(cli, "recv 1", "EOF 0")
    time.sleep(0.3)
    run.do(cli, "send 10", "SENT")
    run.do(cli, "waitreset 3", "CLOSED")


@scenario("follow-up", "as data-after-close, but the client writes 3 full segments in one "
          "burst (TCP_NODELAY): the first gets a bare RST (data-after-close, "
          "TCP_TIMEWAIT_SOCKET), the two others find no socket and get bare RSTs too "
          "(follow-up, NO_SOCKET)")
def follow_up(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(srv, "close", "CLOSED")
    run.do(cli, "recv 1", "EOF 0")
    time.sleep(0.3)
    run.do(cli, "nodelay", "OK")
    run.do(cli, "send 4344", "SENT")
    run.do(cli, "waitreset 3", "CLOSED")


def _lose_state(run: Run, unlisten: bool) -> None:
    """Request/reply, then the server's socket goes without a RST on the wire, then the client
    sends a new request."""
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    run.do(srv, "send 10", "SENT")
    run.do(cli, "recv 10", "RECV 10")
    time.sleep(0.05)
    run.nft("srv", _table("output", "output", "tcp flags & rst == rst drop"))
    run.do(srv, "abort", "ABORTED")
    if unlisten:
        run.do(srv, "unlisten", "UNLISTENED")
    run.nft("srv", DROP_TABLE)
    time.sleep(0.3)
    run.do(cli, "send 10", "SENT")
    run.do(cli, "waitreset 3", "CLOSED ECONNRESET")


@scenario("half-open", "request/reply, then the server loses the connection silently (SO_LINGER"
          " {1,0} close whose RST an nft rule in the server ns drops before the wire; the "
          "listener stays); 0.3 s later the client sends a new request: bare RST from the "
          "server, seq = the request's ack (half-open, kernel TCP_FLAGS in TCP_LISTEN: the "
          "segment reached the listener). Captured on the client side; the dropped RST "
          "(TCP_STATE) is traced only", firewalled=1)
def half_open(run: Run) -> None:
    _lose_state(run, unlisten=False)


@scenario("half-open-noservice", "as half-open, but the service is gone too (listener closed, "
          "as after a reboot before the service is back): bare RST from the server host "
          "(half-open, kernel NO_SOCKET)", firewalled=1)
def half_open_noservice(run: Run) -> None:
    _lose_state(run, unlisten=True)


@scenario("keepalive-timeout", "client with SO_KEEPALIVE idle=1 intvl=1 cnt=2; after one "
          "request the server ns drops all input from the client (nft): two unanswered "
          "keepalive probes, then a RST+ACK from the client (keepalive-timeout, kernel "
          "TCP_KEEPALIVE_TIMEOUT)")
def keepalive_timeout(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "keepalive 1 1 2", "OK")
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    time.sleep(0.05)  # the server's ACK gets through
    run.nft("srv", _table("input", "input", f"ip saddr {run.client} drop"))
    run.do(cli, "waitreset 6", "CLOSED ETIMEDOUT", timeout=8)


INJECT_LIMIT = 20000


@scenario("injected", f"client - router - server; the router's nft forward chain resets the "
          f"server's response once the flow passed {INJECT_LIMIT} bytes (`ct bytes > "
          f"{INJECT_LIMIT} reject with tcp reset`): the server gets RST(s) claiming to be from "
          "the client with TTL 64 while the client's real packets arrive with TTL 63 (injected, "
          "no kernel reason); the client then closes, its FIN finds only the listener: bare RST "
          "from the server (kernel TCP_FLAGS in TCP_LISTEN). Captured on the server side, and "
          "on the client side (-client-side)",
          captures=(("", "srv"), ("-client-side", "cli")), forged=True)
def injected(run: Run) -> None:
    run.sysctl("rtr", "net.netfilter.nf_conntrack_acct", "1")
    run.nft("rtr", _table("forward", "forward",
                          f"tcp sport {PORT} tcp flags & rst == 0 ct bytes > {INJECT_LIMIT} "
                          "reject with tcp reset"))
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    run.do(srv, "send 200000", "ERR", timeout=5)
    run.do(cli, "recv 200000 0.3", "TIMEOUT")
    run.do(cli, "close", "CLOSED")
    time.sleep(0.1)


@scenario("client-abort-probe", "port probe: the client connects and at once closes with "
          "SO_LINGER {1,0}, sending nothing: RST+ACK from the client right after the handshake "
          "(client-abort, kernel TCP_STATE in TCP_CLOSE)")
def client_abort_probe(run: Run) -> None:
    run.server_peer()
    cli = run.client_peer()
    run.do(cli, "abort", "ABORTED")
    time.sleep(0.05)


@scenario("client-abort-scan", "SYN scan: a SYN from a raw socket in the client ns; the "
          "server's SYN+ACK finds no socket on the client, whose kernel answers with a bare "
          "RST (client-abort, kernel NO_SOCKET)")
def client_abort_scan(run: Run) -> None:
    run.server_peer()
    cli = run.role("cli", "raw-syn", run.client, run.server, PORT)
    run.expect(cli, "SENT")
    cli.wait(5)


@scenario("client-abort-timeout", "the client's connect() gives up after 0.3 s (its input "
          "drops the SYN+ACK meanwhile, nft in the client ns); the server retransmits the "
          "SYN+ACK 1 s later and the client kernel, with no socket left, answers with a bare "
          "RST (client-abort, kernel NO_SOCKET)")
def client_abort_timeout(run: Run) -> None:
    run.server_peer()
    run.nft("cli", _table("input", "input", "tcp flags & (syn | ack) == syn | ack drop"))
    run.client_peer("ERR TIMEOUT", timeout=0.3)
    run.nft("cli", DROP_TABLE)
    time.sleep(1.0)  # the SYN+ACK retransmission is due 1 s after the first


def _saddr(run: Run) -> str:
    """The nft match of a packet from the client, in the scenario's address family."""
    return f"{'ip6' if run.v6 else 'ip'} saddr {run.client}"


def _nat_flush(run: Run) -> None:
    """Request/reply through a masquerading router; its conntrack table is flushed; the
    client's next request crosses untranslated (nf_conntrack_tcp_loose=0: a mid-stream packet
    starts no entry) and reaches the server from an address it has no connection with."""
    run.nft("rtr", "table inet rstdiag_nat {\n  chain postrouting {\n"
                   "    type nat hook postrouting priority srcnat; policy accept;\n"
                   '    oifname "eth1" masquerade\n  }\n}\n')
    run.sysctl("rtr", "net.netfilter.nf_conntrack_tcp_loose", "0")
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    run.do(srv, "send 10", "SENT")
    run.do(cli, "recv 10", "RECV 10")
    time.sleep(0.05)
    family = "ipv6" if run.v6 else "ipv4"
    run.log.append(f"conntrack -F -f {family} in rtr")
    run.lab.run(run.lab.rtr.ns, "conntrack", "-F", "-f", family)
    run.do(cli, "send 10", "SENT")
    run.do(cli, "waitreset 3", "CLOSED ECONNRESET")


NAT_FLUSH = ("the router masquerades the client (nftables), its conntrack entry is flushed "
             "mid-connection (`conntrack -F` in the router ns, nf_conntrack_tcp_loose=0); the "
             "client's next request reaches the server untranslated, from an address the server "
             "has no connection with, and the server's bare RST at the request's ack number "
             "ends the client's connection (half-open, kernel TCP_FLAGS: the listener answered)."
             " Captured on the client side and on the server side (-server-side)")


@scenario("nat-flush", NAT_FLUSH, tools=("conntrack",),
          captures=(("", "cli"), ("-server-side", "srv")))
def nat_flush(run: Run) -> None:
    _nat_flush(run)


@scenario("nat-flush-v6", "nat-flush over IPv6 (NAT66 masquerade)", v6=True,
          tools=("conntrack",), captures=(("", "cli"), ("-server-side", "srv")))
def nat_flush_v6(run: Run) -> None:
    _nat_flush(run)


FLOOD_PORTS = 20000  # the flood's source ports, below the ephemeral range of real clients


def _syn_flood(run: Run) -> None:
    run.sysctl("srv", "net.ipv4.tcp_syncookies", "1")
    run.nft("cli", _table("input", "input", f"tcp dport {FLOOD_PORTS}-{FLOOD_PORTS + 9999} "
                                            "drop"))  # the flood's SYN+ACKs die quietly
    srv = run.role("srv", "slow-acceptor", run.server, PORT, 1, 0.1)
    run.expect(srv, "READY")
    flood = run.role("cli", "syn-flood", run.client, run.server, PORT, 300, FLOOD_PORTS)
    run.expect(flood, "FLOODED")
    cli = run.role("cli", "loop-clients", run.server, PORT, 8, 3.2)
    run.expect(cli, "COUNTS", timeout=10)
    cookies = _netstat(run, "srv", "TcpExt", "SyncookiesSent")
    run.log.append(f"srv TcpExt SyncookiesSent={cookies}")
    if not cookies:
        raise LabError("syn-flood: the server sent no SYN cookie")


def _netstat(run: Run, side: str, group: str, name: str) -> int:
    """One counter of /proc/net/netstat as the namespace `side` sees it."""
    text = run.lab.run(getattr(run.lab, side).ns, "cat", "/proc/net/netstat").stdout
    lines = [line.split() for line in text.splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names and names[0] == f"{group}:" and name in names:
            return int(values[names.index(name)])
    return 0


SYN_FLOOD = ("300 SYNs from raw sockets (their SYN+ACKs dropped in the client ns) fill the "
             "listen(1) queue of a server that accept()s, sleeps 100 ms and closes, so SYN "
             "cookies answer every SYN (tcp_syncookies=1); under the flood 8 client threads "
             "connect, send and close in a loop for 3.2 s as in accept-overflow-loop: the "
             "cookie handshakes the full accept queue cannot take are answered by the listener's"
             " bare RST when the client's FIN comes (accept-overflow, kernel TCP_FLAGS in "
             "TCP_LISTEN); the flood itself draws no RST")


@scenario("syn-flood-cookies", SYN_FLOOD, check=lambda segs, run: _server_rsts(segs, run))
def syn_flood_cookies(run: Run) -> None:
    _syn_flood(run)


@scenario("syn-flood-cookies-v6", "syn-flood-cookies over IPv6", v6=True,
          check=lambda segs, run: _server_rsts(segs, run))
def syn_flood_cookies_v6(run: Run) -> None:
    _syn_flood(run)


def _user_timeout(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "usertimeout 800", "OK")
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    time.sleep(0.05)  # the server's ACK gets through
    run.nft("srv", _table("input", "input", f"{_saddr(run)} drop"))
    run.do(cli, "send 10", "SENT")
    run.do(cli, "waitreset 4", "CLOSED ETIMEDOUT", timeout=6)
    run.nft("srv", DROP_TABLE)
    run.do(srv, "send 10", "SENT")
    time.sleep(0.3)


USER_TIMEOUT = ("the client sets TCP_USER_TIMEOUT 800 ms; after one request the server ns "
                "drops the client's packets, the client's second request is retransmitted "
                "until the timeout and the connection dies without a RST (ETIMEDOUT); the path "
                "heals and the server's reply gets a bare RST from the client's kernel at the "
                "reply's ack number, behind the client's unacknowledged request (half-open, "
                "kernel NO_SOCKET)")


@scenario("user-timeout", USER_TIMEOUT)
def user_timeout(run: Run) -> None:
    _user_timeout(run)


@scenario("user-timeout-v6", "user-timeout over IPv6", v6=True)
def user_timeout_v6(run: Run) -> None:
    _user_timeout(run)


def _next_seq(run: Run, addr: str) -> tuple[int, int]:
    """(source port, next sequence number) of what `addr` sent so far, from the capture being
    written (tcpdump -U)."""
    time.sleep(0.1)
    want = str(ipaddress.ip_address(addr))
    sent = [s for s in read_segments(run.pcaps[0]) if s.src == want and not s.rst]
    if not sent:
        raise LabError(f"no segment from {addr} captured yet")
    last = max(sent, key=lambda s: (s.seq - sent[0].seq) % (1 << 32) + s.length
               + ("F" in s.flags))
    return last.sport, last.seq + last.length + ("F" in last.flags)


def _crafted_rst(run: Run, offset: int) -> None:
    """A bare RST in the client's name, `offset` from the client's next sequence number,
    from a raw socket in the client ns (the client's host, not its socket, sends it)."""
    sport, nxt = _next_seq(run, run.client)
    run.log.append(f"raw RST at the client's next seq {offset:+d}")
    crafted = run.role("cli", "raw-rst", run.client, run.server, sport, PORT, nxt + offset)
    run.expect(crafted, "SENT")
    crafted.wait(5)


def _challenge_ack(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    run.do(srv, "send 10", "SENT")
    run.do(cli, "recv 10", "RECV 10")
    _crafted_rst(run, 1000)
    time.sleep(0.1)
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")


CHALLENGE = ("after a request and its reply, a bare RST 1000 past the client's next sequence "
             "number (in the server's window, not exact) from a raw socket in the client ns: "
             "the server answers with a challenge ACK (RFC 5961) and the connection goes on, "
             "the client's next request is read (injected in the client's name by its own host,"
             " effect challenged; no kernel reason: no stack sent it)")


@scenario("challenge-ack", CHALLENGE, forged=True)
def challenge_ack(run: Run) -> None:
    _challenge_ack(run)


@scenario("challenge-ack-v6", "challenge-ack over IPv6", v6=True, forged=True)
def challenge_ack_v6(run: Run) -> None:
    _challenge_ack(run)


def _rst_behind_window(run: Run) -> None:
    srv, cli = run.connected_pair()
    run.do(cli, "send 10", "SENT")
    run.do(srv, "recv 10", "RECV 10")
    run.do(cli, "shutdown wr", "SHUT")
    run.do(srv, "recv 1 1", "EOF")
    _crafted_rst(run, -100)
    run.do(srv, "send 100000", "SENT")
    run.do(cli, "recv 100000", "RECV 100000")
    run.do(srv, "close", "CLOSED")
    run.do(cli, "recv 1", "EOF")


BEHIND_WINDOW = ("seed 003 as far as a Linux receiver allows: the client sends its request and "
                 "its FIN, the server (CLOSE_WAIT) streams 100 kB while a bare RST in the "
                 "client's name lands 100 before the server's window (Linux accepts one "
                 "exactly one before it in CLOSE_WAIT, so the seed's seq=421 would be "
                 "accepted): the server ignores it and streams on (injected by the client's "
                 "host, effect ignored)")


@scenario("rst-behind-window", BEHIND_WINDOW, forged=True)
def rst_behind_window(run: Run) -> None:
    _rst_behind_window(run)


@scenario("rst-behind-window-v6", "rst-behind-window over IPv6", v6=True, forged=True)
def rst_behind_window_v6(run: Run) -> None:
    _rst_behind_window(run)


HAPROXY_CFG = """global
    maxconn 64
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    timeout http-keep-alive 300ms
frontend web
    bind {bind}
    option nolinger
    default_backend app
backend app
    server app1 127.0.0.1:{backend}
"""
BACKEND_PORT = 9000


def _wait_listening(run: Run, side: str, port: int, timeout: float = 10.0) -> None:
    ns = getattr(run.lab, side).ns
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run.lab.run(ns, "ss", "-ltnH", f"sport = :{port}").stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise LabError(f"nothing listens on :{port} in {side} after {timeout}s")


def _haproxy(run: Run) -> None:
    backend = run.lab.popen(run.lab.srv.ns, sys.executable, "-m", "http.server", "--bind",
                            "127.0.0.1", str(BACKEND_PORT), name="srv:backend", stdin=False)
    cfg = run.lab.tmpdir / "haproxy.cfg"
    bind = f"[{run.server}]:{PORT}" if run.v6 else f"{run.server}:{PORT}"
    cfg.write_text(HAPROXY_CFG.format(bind=bind, backend=BACKEND_PORT))
    run.lab.popen(run.lab.srv.ns, "haproxy", "-db", "-f", str(cfg), name="srv:haproxy",
                  stdin=False)
    _wait_listening(run, "srv", BACKEND_PORT)
    _wait_listening(run, "srv", PORT)
    run.log.append(f"haproxy (option nolinger, http-keep-alive 300ms) -> {backend.name}")
    cli = run.client_peer()
    run.do(cli, "get", "SENT")
    run.do(cli, "recvsome 65536", "RECV")
    run.do(cli, "waitreset 3", "CLOSED")  # EPIPE: HAProxy's FIN came just before its RST


HAPROXY = ("HAProxy (Debian's package) in the server ns with `option nolinger` proxies to a "
           "Python HTTP server; the client sends one keep-alive request, reads the reply and "
           "waits: after `timeout http-keep-alive` (300 ms) HAProxy shuts the idle client "
           "connection down (FIN) and closes it with SO_LINGER {1,0}: RST+ACK after its FIN "
           "(linger-abort with alternative unread-data, kernel TCP_STATE)")


@scenario("haproxy-nolinger", HAPROXY, tools=("haproxy",))
def haproxy_nolinger(run: Run) -> None:
    _haproxy(run)


@scenario("haproxy-nolinger-v6", "haproxy-nolinger over IPv6", v6=True, tools=("haproxy",))
def haproxy_nolinger_v6(run: Run) -> None:
    _haproxy(run)


# ------------------------------------------------------------------------------- running


def run_scenario(name: str, outdir: Path, block: int | None = None,
                 trace: bool | None = None) -> ScenarioResult:
    """Run one scenario in a fresh lab; its capture(s) go to `outdir/<name><suffix>.pcap`."""
    sc = SCENARIOS[name]
    outdir = Path(outdir)
    started = time.monotonic()
    if trace is None:
        trace = tracing_unavailable() is None
    with Lab(name, block) as lab:
        run = Run(lab, sc.v6)
        tracer = ResetTrace(lab.tag) if trace else None
        try:
            if tracer:
                try:
                    tracer.start()
                except OSError:  # no instance for us: run without the kernel's reasons
                    tracer.close()
                    tracer = None
            sides = {"cli": lab.cli.ns, "srv": lab.srv.ns}
            caps = [(suffix, lab.capture(sides[side], outdir / f"{name}{suffix}.pcap"))
                    for suffix, side in sc.captures]
            run.pcaps = [cap.path for _, cap in caps]
            try:
                for _, cap in caps:
                    cap.start()
                sc.body(run)
            finally:
                for i, (_, cap) in enumerate(caps):
                    cap.stop(drain=0.2 if i == 0 else 0.0)
            resets = tracer.read(lab.addresses()) if tracer else []
            if sc.check is not None and not sc.check(read_segments(caps[0][1].path), run):
                raise LabError(f"{name}: the capture lacks the RSTs it should show")
        finally:
            if tracer:
                tracer.close()
        return ScenarioResult(
            name=name, pcap=caps[0][1].path, kernel_resets=resets, expected=sc.expected,
            client=run.client, server=run.server, port=PORT,
            extra_pcaps={suffix: cap.path for suffix, cap in caps[1:]},
            traced=bool(tracer), firewalled=sc.firewalled,
            forged_from=run.client if sc.forged else None,
            topology=f"netns client {run.client} - router - server {run.server}:{PORT}",
            captured_at={cap.path.name: f"{'client' if side == 'cli' else 'server'} ns eth0"
                         for (_, cap), (_, side) in zip(caps, sc.captures, strict=True)},
            log=run.log, seconds=time.monotonic() - started)


# the scenarios that take 1.5 s and more: started first when running several
SLOW = ("keepalive-timeout", "client-abort-timeout", "accept-overflow-loop", "closed-port-retry",
        "syn-flood-cookies", "syn-flood-cookies-v6", "user-timeout", "user-timeout-v6")


def run_with_retry(name: str, outdir: Path, attempts: int = 2) -> ScenarioResult:
    """run_scenario, once more in a fresh lab if a step timed out or the RSTs did not show."""
    for attempt in range(1, attempts + 1):
        try:
            result = run_scenario(name, outdir)
        except LabError:
            if attempt == attempts:
                raise
        else:
            result.attempts = attempt
            return result
    raise AssertionError("unreachable")


def start_scenarios(names: list[str], outdir: Path,
                    workers: int = 6) -> dict[str, Future[ScenarioResult]]:
    """Start scenarios in threads (each in its own lab); one future per name."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario")
    slow_first = sorted(names, key=lambda n: n not in SLOW)
    futures = {name: pool.submit(run_with_retry, name, outdir) for name in slow_first}
    pool.shutdown(wait=False)
    return futures


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ROLES:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(ROLES)}}} ARGS...")
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        ROLES[sys.argv[1]](sys.argv[2:])
    os._exit(0)
