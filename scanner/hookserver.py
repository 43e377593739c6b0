"""A resident server for `provscan hook`: the hook's imports, done once.

A hook run is a new process per commit, and on a small machine importing numpy, tree-sitter and
the scanner costs more than checking ten files (0.44-0.53 s of a 0.70 s run, bench/hook_bench.py).
The server is a fork server: it imports everything once, then for each hook run forks a child
that *is* that run. The client (`provscan hook`) sends its arguments, working directory,
environment and umask, and passes its own stdin, stdout and stderr over the socket
(SCM_RIGHTS); the child takes them over, runs the same `scanner.cli.main` the client would
have run, and sends back the exit code. Output, config, index and baseline handling are
therefore exactly those of an in-process run; only the imports are shared.

Started by the first hook run that finds none (in the background, after answering that run
itself), it exits after `IDLE_SECONDS` without requests, when the installed code changes, or on
`provscan server stop`. PROVSCAN_HOOK_SERVER=0 (or `hook-server = false` in the configuration)
keeps the hook in process.

Safety: the socket lives in a directory only the user can enter (XDG_RUNTIME_DIR, else a 0700
directory of the user's in the temporary directory, checked for owner and mode), and the server
answers only peers with its own uid (SO_PEERCRED). It executes nothing but our own CLI.

This module is imported by every hook run before anything else: keep its imports to the
standard library's cheapest.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import struct
import sys

IDLE_SECONDS = 900
serving = False  # True in the server and its children: a child's own hook run must not forward again
used_index = None  # in a child: the ScanOptions its hook run loaded references with (see _warm)
_CONNECT_TIMEOUT = 2.0
_STALE = 250  # exit code a server answers with when its code changed: the client runs in process


def enabled() -> bool:
    return os.environ.get("PROVSCAN_HOOK_SERVER", "1").strip().lower() not in ("0", "false", "no", "off")


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def socket_path() -> str:
    """One server per user, Python and installation of provscan."""
    from scanner import __version__

    key = hashlib.sha256(f"{sys.executable}\0{_package_root()}\0{__version__}".encode()).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        folder = os.path.join(runtime, "provscan")
    else:
        import tempfile

        folder = os.path.join(tempfile.gettempdir(), f"provscan-{os.getuid()}")
    return os.path.join(folder, f"hook-{key}.sock")


def _private_folder(folder: str) -> None:
    """Create (0700) or check the socket folder: ours, and nobody else may write or enter it."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    import stat

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a private directory of this user")


# ---- client --------------------------------------------------------------------------------

def _connect() -> tuple[socket.socket, int] | None:
    """A connection to this installation's server, and the server's pid (from the kernel, not from
    what the peer says); None when none listens, or the listener is not this user's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_CONNECT_TIMEOUT)
        sock.connect(socket_path())
        pid, uid = _peer(sock)
        if uid == os.getuid():
            return sock, pid
    except OSError:
        pass
    sock.close()
    return None


def forward(argv: list[str]) -> int | None:
    """Run `provscan ARGV` in the server; None when there is no usable server (run in process)."""
    connected = _connect()
    if connected is None:
        return None
    sock = connected[0]
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
                              "encoding": sys.stdout.encoding, "errors": sys.stdout.errors}).encode()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        socket.send_fds(sock, [struct.pack("!I", len(request)) + request], [0, 1, 2])
        sock.settimeout(None)  # the run takes what it takes; the child closes the socket when done
        reply = _recv_exact(sock, 4)
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
    if reply is None:
        print("provscan: error: the hook server stopped during the run; "
              "run again, or set PROVSCAN_HOOK_SERVER=0", file=sys.stderr)
        return 2
    code = struct.unpack("!i", reply)[0]
    return None if code == _STALE else code


def spawn() -> None:
    """Start a server in the background for the next hook runs (this one has already run)."""
    import subprocess

    try:
        subprocess.Popen([sys.executable, "-m", "scanner", "server", "run"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         close_fds=True)
    except OSError:
        pass  # the next run is simply in process again


def _peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return pid, uid


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def status() -> dict | None:
    """{"pid", "served", "since", "socket", "warm"} of the running server, or None."""
    connected = _connect()
    if connected is None:
        return None
    sock, pid = connected
    try:
        request = json.dumps({"status": True}).encode()
        sock.sendall(struct.pack("!I", len(request)) + request)
        size = _recv_exact(sock, 4)
        body = _recv_exact(sock, struct.unpack("!I", size)[0]) if size else None
        info = json.loads(body) if body else None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
    return {**info, "pid": pid} if isinstance(info, dict) else None


def stop() -> bool:
    """Ask the running server to exit; True when one was running."""
    connected = _connect()
    if connected is None:
        return False
    sock, pid = connected
    sock.close()
    import signal

    try:
        os.kill(pid, signal.SIGTERM)  # the pid the kernel gives for the listener: ours, checked
    except OSError:
        return False
    return True


# ---- server --------------------------------------------------------------------------------

def _code_stamp() -> list:
    """mtime and size of every provscan module loaded: a reinstall or an edit makes the server stale."""
    root = _package_root()
    stamp = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(root) and name.split(".")[0] in ("scanner", "signatures", "reports"):
            try:
                st = os.stat(path)
            except OSError:
                st = None
            stamp.append((path, st.st_mtime_ns if st else None, st.st_size if st else None))
    return stamp


def _preload() -> None:
    """What a hook run imports and sets up, so that a child starts with it (a child that still
    imports a module pays for it on every run: tests/test_hookserver.py lists what one imports)."""
    import fcntl  # noqa: F401
    import locale  # noqa: F401
    import mmap  # noqa: F401

    import reports.text  # noqa: F401
    import scanner.attribute  # noqa: F401
    import scanner.config  # noqa: F401
    import scanner.configs  # noqa: F401
    import scanner.match  # noqa: F401
    import scanner.pipeline  # noqa: F401
    import scanner.suppress  # noqa: F401
    import signatures.store  # noqa: F401
    from scanner import fingerprint, licenses, parse

    parse._parser()
    parse._query()
    fingerprint._worker_hasher(fingerprint.Params())  # the MinHash permutations
    licenses.analyse("# Copyright 2024 Example Inc.\n# SPDX-License-Identifier: Apache-2.0\n"
                     "# Licensed under the Apache License, Version 2.0 (the \"License\");\n")


def serve(idle: float = IDLE_SECONDS) -> int:
    """Run the server in the foreground until idle, stale or signalled."""
    import fcntl
    import signal
    import time

    path = socket_path()
    _private_folder(os.path.dirname(path))
    lock = open(path + ".lock", "a")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server of this installation is starting or running
    global serving
    serving = True
    _preload()
    stamp = _code_stamp()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(64)

    def stop_serving(*_) -> None:  # raised out of select(), which Python would otherwise resume
        raise _Stopped

    signal.signal(signal.SIGTERM, stop_serving)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    since, served = time.time(), 0
    reports: dict[int, bytes] = {}  # read ends of the children's pipes -> what they said so far
    try:
        while True:
            ready, _, _ = select.select([listener, *reports], [], [], idle)
            if not ready:
                return 0  # idle
            for fd in [fd for fd in ready if fd in reports]:
                chunk = os.read(fd, 65536)
                if chunk:
                    reports[fd] += chunk
                    continue
                os.close(fd)
                _warm(reports.pop(fd))  # the child is done: load the index it used, for the next ones
            if listener not in ready:
                continue
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                try:
                    if _peer(conn)[1] != os.getuid():
                        continue
                    conn.settimeout(10)
                    head, fds, _, _ = socket.recv_fds(conn, 4, 3)
                    if len(head) < 4:
                        _close(fds)
                        continue
                    size = struct.unpack("!I", head)[0]
                    body = _recv_exact(conn, size) if size < 1 << 24 else None
                    request = json.loads(body) if body else None
                except (OSError, ValueError):
                    continue
                if not isinstance(request, dict):
                    _close(fds)
                    continue
                if request.get("status"):
                    from scanner.pipeline import _WARM

                    reply = json.dumps({"pid": os.getpid(), "served": served, "since": since, "socket": path,
                                        "warm": sorted(location for location, _ in _WARM)}).encode()
                    conn.sendall(struct.pack("!I", len(reply)) + reply)
                    continue
                if _code_stamp() != stamp or len(fds) != 3:
                    _close(fds)
                    conn.sendall(struct.pack("!i", _STALE))
                    if len(fds) == 3:
                        return 0  # the installed code changed: the next run starts a fresh server
                    continue
                served += 1
                read_end, write_end = os.pipe()
                if os.fork() == 0:
                    listener.close()
                    os.close(read_end)
                    _child(conn, fds, request, write_end)  # never returns
                os.close(write_end)
                reports[read_end] = b""
                _close(fds)
    except _Stopped:
        return 0
    finally:
        listener.close()
        try:
            os.unlink(path)  # ours: only the holder of the lock binds this path
        except OSError:
            pass
    return 0


class _Stopped(Exception):
    """SIGTERM (provscan server stop)."""


def _warm(report: bytes) -> None:
    """Load the index a child used (scanner.pipeline.warm_references) so that later children inherit it."""
    try:
        data = json.loads(report) if report else None
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            return
        from pathlib import Path

        from scanner.fingerprint import Params
        from scanner.pipeline import ScanOptions, warm_references

        cache = data.get("cache_dir")
        warm_references(ScanOptions(params=Params(**data["params"]), index=str(data["index"]),
                                    cache_dir=Path(cache) if cache else None))
    except Exception:  # noqa: BLE001 - a server that cannot warm an index still serves (cold) runs
        pass


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _child(conn: socket.socket, fds: list[int], request: dict, report_fd: int) -> None:
    """Become the client's hook run: its streams, directory, environment; then report the exit code."""
    import signal

    code = 2
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        _close(fds)
        encoding, errors = str(request.get("encoding") or "utf-8"), str(request.get("errors") or "strict")
        sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding=encoding, errors=errors, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding=encoding, errors="backslashreplace", closefd=False)  # noqa: SIM115
        os.chdir(request["cwd"])
        os.umask(int(request.get("umask", 0o022)))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
        from scanner.cli import main

        code = main([str(a) for a in request["argv"]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # noqa: BLE001 - the client must get a code and one line, never a hang
        try:
            print(f"provscan: error: hook server: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        except Exception:  # noqa: BLE001
            pass
        code = 2
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        try:
            conn.sendall(struct.pack("!i", int(code)))
        except OSError:
            pass
        try:
            if used_index is not None:
                options = used_index
                os.write(report_fd, json.dumps({"index": options.index, "params": vars(options.params),
                                                "cache_dir": str(options.cache_dir) if options.cache_dir else None}).encode())
        except Exception:  # noqa: BLE001
            pass
        os._exit(0)


