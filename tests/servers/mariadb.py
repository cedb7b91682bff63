"""A throwaway MariaDB server for tests: its own datadir, a free port, no systemd.

``MariaDBServer.start()`` initialises a datadir in a temporary folder, starts ``mariadbd`` on
127.0.0.1 with a random free port, waits until it answers, then creates a database, an admin
user and the ``'drivetrain'@'127.0.0.1'`` user (SELECT on that database, as a pipeline would
have). When a certificate authority can be made (``openssl``), the server also speaks TLS and a
second user, ``drivetrain_tls``, is only allowed in over TLS. ``stop()`` shuts it down and
removes the folder. Install the binaries with ``scripts/install-test-servers``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import attrs

from tests.servers import plumbing
from tests.servers.plumbing import ServerError

__all__ = ["MariaDBServer", "ServerError"]

INSTALL_HINT = (
    "MariaDB binaries not found (mariadbd, mariadb-install-db). Install them with "
    "`sudo scripts/install-test-servers` (Debian/Ubuntu: apt-get install -y "
    "--no-install-recommends mariadb-server mariadb-client)"
)
STARTUP_TIMEOUT = 30.0
DATABASE = "drivetrain_test"
USER = "drivetrain"
PASSWORD = "dt-test-Pa55word"
TLS_USER = "drivetrain_tls"
ADMIN_USER = "dt_admin"
ADMIN_PASSWORD = "dt-admin-Pa55word"


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


@attrs.define
class MariaDBServer:
    """A running throwaway server. Connection settings are plain attributes."""

    folder: Path
    """Temporary folder holding the datadir, socket, logs and certificates."""
    port: int
    """TCP port on 127.0.0.1."""
    process: subprocess.Popen[bytes]
    """The mariadbd process."""
    certificates: dict[str, Path] | None = None
    """``ca``, ``server``... PEM files when the server speaks TLS."""
    host: str = "127.0.0.1"
    database: str = DATABASE
    user: str = USER
    password: str = PASSWORD

    @property
    def error_log(self) -> Path:
        """The server's error log."""
        return self.folder / "error.log"

    @classmethod
    def start(cls, base: Path | None = None, *, attempts: int = 3, tls: bool = True) -> MariaDBServer:
        """Install a datadir and start the server; retry on a port taken meanwhile.

        ``tls=False`` serves plain TCP only (the benchmarks: connectorx does not speak TLS to it).

        :raises ServerError: with the install hint or the server's error log.
        """
        mariadbd, install_db = _binary("mariadbd"), _binary("mariadb-install-db")
        if mariadbd is None or install_db is None:
            raise ServerError(INSTALL_HINT)
        folder = Path(tempfile.mkdtemp(prefix="dt-mariadb-", dir=base))
        try:
            _install(install_db, folder)
            certificates = plumbing.make_certificates(folder) if tls else None
            return plumbing.launch_with_retries(lambda: cls._launch(mariadbd, folder, certificates), attempts)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @classmethod
    def _launch(
        cls, mariadbd: str, folder: Path, certificates: dict[str, Path] | None
    ) -> MariaDBServer:
        port = plumbing.free_port()
        log = folder / "error.log"
        log.unlink(missing_ok=True)
        init = folder / "init.sql"
        init.write_text(_init_sql(tls=certificates is not None))
        args = [
            mariadbd,
            "--no-defaults",
            f"--datadir={folder / 'data'}",
            "--bind-address=127.0.0.1",
            f"--port={port}",
            f"--socket={folder / 'mysqld.sock'}",
            f"--pid-file={folder / 'mysqld.pid'}",
            f"--log-error={log}",
            f"--init-file={init}",
            "--skip-name-resolve",
            "--default-time-zone=+00:00",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--max-allowed-packet=64M",
            "--skip-log-bin",
            "--innodb-use-native-aio=0",  # io_uring / libaio are often refused in containers
        ]
        if certificates is not None:
            args += [
                f"--ssl-ca={certificates['ca']}",
                f"--ssl-cert={certificates['server']}",
                f"--ssl-key={certificates['server-key']}",
            ]
        if os.geteuid() == 0:
            args.append("--user=root")
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        server = cls(folder=folder, port=port, process=process, certificates=certificates)
        server._wait_ready()
        return server

    def _wait_ready(self) -> None:
        import pymysql

        plumbing.wait_ready(self.process, "mariadbd", lambda: self.admin().close(), pymysql.err.MySQLError,
                   self._log_tail, STARTUP_TIMEOUT)

    def _log_tail(self, lines: int = 40) -> str:
        return plumbing.log_tail(self.error_log, "error log", lines)

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """pymysql.connect arguments for the ``drivetrain`` user."""
        kwargs = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "charset": "utf8mb4",
        }
        return {**kwargs, **overrides}

    def admin(self, **overrides: Any) -> Any:
        """A pymysql connection with every privilege, autocommit on, time zone UTC."""
        import pymysql

        kwargs = self.connect_kwargs(
            user=ADMIN_USER, password=ADMIN_PASSWORD, autocommit=True, connect_timeout=5
        )
        kwargs.update(overrides)
        conn = pymysql.connect(**kwargs)
        with conn.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
        return conn

    def stop(self) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after 15 s) and remove its folder."""
        plumbing.stop(self.process, self.folder, signal.SIGTERM)


def _install(install_db: str, folder: Path) -> None:
    args = [
        install_db,
        "--no-defaults",
        f"--datadir={folder / 'data'}",
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ServerError(
            f"mariadb-install-db failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-2000:]}"
        )


def _init_sql(*, tls: bool) -> str:
    """Run by mariadbd at startup (--init-file): the test database and its users."""
    lines = [
        f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4;",
        f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'127.0.0.1' IDENTIFIED BY '{ADMIN_PASSWORD}';",
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'127.0.0.1' WITH GRANT OPTION;",
        f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';",
        f"GRANT SELECT ON `{DATABASE}`.* TO '{USER}'@'127.0.0.1';",
    ]
    if tls:
        lines += [
            f"CREATE USER IF NOT EXISTS '{TLS_USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' "
            "REQUIRE SSL;",
            f"GRANT SELECT ON `{DATABASE}`.* TO '{TLS_USER}'@'127.0.0.1';",
        ]
    return "\n".join(lines) + "\n"
