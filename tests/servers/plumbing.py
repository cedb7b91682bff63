"""Process plumbing the throwaway database servers share (MariaDB, PostgreSQL).

A free port, a test certificate authority, the start-up retry on a port taken meanwhile, the
wait until the server answers, the tail of its log, and the shutdown that removes its folder.
What each server is started with, and how it is provisioned, stays in its own module.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ServerError(RuntimeError):
    """The server could not be installed or started; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_with_retries(launch: Callable[[], T], attempts: int) -> T:
    """``launch()``, again while it fails on a port another process took meanwhile."""
    last: ServerError | None = None
    for _ in range(attempts):
        try:
            return launch()
        except ServerError as exc:
            last = exc
            if "already in use" not in str(exc):
                break
    assert last is not None
    raise last


def wait_ready(
    process: subprocess.Popen[bytes],
    name: str,
    probe: Callable[[], None],
    refused: type[Exception],
    tail: Callable[[], str],
    timeout: float,
) -> None:
    """Call ``probe()`` until it stops raising ``refused``; :class:`ServerError` with the log
    tail when the process exits or ``timeout`` seconds pass (the process is killed then)."""
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{name} exited with {process.returncode}.\n{tail()}")
        try:
            probe()
            return
        except refused as exc:
            problem = str(exc).strip()
        time.sleep(0.1)
    kill(process)
    raise ServerError(f"{name} did not answer within {timeout:.0f}s ({problem}).\n{tail()}")


def log_tail(path: Path, label: str, lines: int = 40) -> str:
    """The last ``lines`` lines of a server log, headed by ``label``."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {label})"
    return f"{label}:\n" + "\n".join(text[-lines:])


def stop(process: subprocess.Popen[bytes], folder: Path, sig: signal.Signals) -> None:
    """Send ``sig`` (the server's fast shutdown), SIGKILL after 15 s; remove ``folder``."""
    try:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process if it still runs, and reap it."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def make_certificates(folder: Path) -> dict[str, Path] | None:
    """A CA and a server certificate for "localhost" (not for 127.0.0.1), or None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    names = ("ca", "ca-key", "server", "server-key", "other-ca", "other-ca-key")
    files = {name: folder / f"{name}.pem" for name in names}
    csr = folder / "server.csr"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost\nauthorityKeyIdentifier=keyid,issuer\n")

    def authority(name: str, key: Path, out: Path) -> list[Any]:
        return ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                "-keyout", key, "-out", out]

    steps = [
        authority("drivetrain test CA", files["ca-key"], files["ca"]),
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", files["server-key"],
         "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", files["ca"], "-CAkey", files["ca-key"], "-CAcreateserial",
         "-days", "2", "-extfile", ext, "-out", files["server"]],
        # an unrelated authority, to show its trust does not extend to our server
        authority("other CA", files["other-ca-key"], files["other-ca"]),
    ]
    for step in steps:
        done = subprocess.run([openssl, *map(str, step)], capture_output=True, text=True)
        if done.returncode != 0:
            return None
    return files
