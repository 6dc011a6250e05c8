"""Least privilege for `rstdiag live`: once the capture socket, the -w file, the tracing
instance, the metrics socket and the log are open, the process gives up what it no longer
needs, before any thread that reads packets or serves requests starts.

Started as root, it becomes an unprivileged user (-Z USER, as tcpdump's -Z; by default the
user who ran sudo, else `nobody`): supplementary groups, group and user set for real, effective
and saved IDs, so that no way back remains, and the capability bounding set emptied first.
Started as another user with capabilities (setcap, systemd's AmbientCapabilities), it keeps its
user and drops every capability. Either way no_new_privs is set: no exec can gain privilege.
`-Z root` keeps root and everything (as tcpdump's).

Linux only; the standard library plus ctypes for prctl(2) and capset(2).
"""

from __future__ import annotations

import ctypes
import os
import pwd
from pathlib import Path

from .errors import RstdiagError

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
DEFAULT_USER = "nobody"


class PrivilegeError(RstdiagError):
    """The process cannot become what -Z asks (no such user, not root)."""


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc().prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                     ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _last_capability() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


def _empty_bounding_set() -> None:
    """No capability can come back through an exec (needs CAP_SETPCAP, which root has)."""
    for cap in range(_last_capability() + 1):
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            return


def _clear_capabilities() -> None:
    """Effective, permitted and inheritable sets empty (the ambient set follows)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc().capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"cannot drop capabilities: {os.strerror(err)}")


def default_user() -> str:
    """Who a root process becomes without -Z: the user who ran sudo, else nobody."""
    sudo = os.environ.get("SUDO_USER")
    if sudo and sudo != "root":
        try:
            pwd.getpwnam(sudo)
            return sudo
        except KeyError:
            pass
    return DEFAULT_USER


def drop_privileges(user: str | None) -> str | None:
    """Give up privilege as the module says; what the process runs as now (for a line on
    stderr), or None when it keeps root (-Z root). PrivilegeError (one line) when it cannot."""
    if user == "root":
        return None
    if os.geteuid() == 0:
        name = user or default_user()
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise PrivilegeError(f"-Z {name}: no such user (-Z root keeps root)") from None
        try:
            os.initgroups(name, entry.pw_gid)
            _empty_bounding_set()
            os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
            os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
        except OSError as exc:
            raise PrivilegeError(f"-Z {name}: cannot switch user ({exc.strerror})") from None
        if os.getuid() == 0 or os.geteuid() == 0:  # never run on as root by mistake
            raise PrivilegeError(f"-Z {name}: still root after switching user")
    elif user is not None and user != pwd.getpwuid(os.getuid()).pw_name:
        raise PrivilegeError(f"-Z {user}: only root can switch to another user")
    _clear_capabilities()
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as exc:
        raise PrivilegeError(f"cannot set no_new_privs ({exc.strerror})") from None
    who = pwd.getpwuid(os.getuid()).pw_name
    return f"{who} (uid {os.getuid()}), without capabilities"
