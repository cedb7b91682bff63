"""A throwaway PostgreSQL server for tests: its own data directory, a free port, no systemd.

``PostgresServer.start()`` runs ``initdb`` in a temporary folder, starts ``postgres`` on
127.0.0.1 with a random free port and its unix socket in that folder, waits until it answers,
then creates the test database, an admin role and the ``drivetrain`` role (CONNECT on the
database, SELECT on the tables of its ``public`` schema, as a pipeline would have). When a
certificate authority can be made (``openssl``), the server also speaks TLS, with a
certificate for "localhost" (not for 127.0.0.1). The server
refuses to run as root, so under root the folder is given to the ``postgres`` account (or
``nobody``) and both programs run as that account. ``stop()`` shuts it down and removes the
folder. Install the binaries with ``scripts/install-test-servers`` (Debian's ``postgresql``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import attrs

from tests.servers import plumbing
from tests.servers.plumbing import ServerError

__all__ = ["PostgresServer", "ServerError"]

INSTALL_HINT = (
    "PostgreSQL binaries not found (initdb, postgres under /usr/lib/postgresql/*/bin). Install "
    "them with `sudo scripts/install-test-servers` (Debian/Ubuntu: apt-get install -y "
    "--no-install-recommends postgresql)"
)
STARTUP_TIMEOUT = 30.0
DATABASE = "drivetrain_test"
USER = "drivetrain"
PASSWORD = "dt-pg-Pa55word"
ADMIN_USER = "dt_admin"
ADMIN_PASSWORD = "dt-pg-admin-Pa55word"


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` holding initdb and postgres (or PATH's)."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for folder in reversed(found):
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(initdb).parent
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (it refuses root), else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerError("running as root and neither a 'postgres' nor a 'nobody' account exists")


@attrs.define
class PostgresServer:
    """A running throwaway server. Connection settings are plain attributes."""

    folder: Path
    """Temporary folder holding the data directory, socket and log."""
    port: int
    """TCP port on 127.0.0.1."""
    process: subprocess.Popen[bytes]
    """The postgres process."""
    bin_dir: Path
    """Folder of the server's programs (psql is there too)."""
    certificates: dict[str, Path] | None = None
    """``ca``, ``server``, ``other-ca``... PEM files when the server speaks TLS."""
    host: str = "127.0.0.1"
    database: str = DATABASE
    user: str = USER
    password: str = PASSWORD

    @property
    def log(self) -> Path:
        """The server's log."""
        return self.folder / "postgres.log"

    @classmethod
    def start(cls, base: Path | None = None, *, attempts: int = 3) -> PostgresServer:
        """Initialise a data directory and start the server; retry on a port taken meanwhile.

        :raises ServerError: with the install hint or the server's log.
        """
        bin_dir = binaries()
        if bin_dir is None:
            raise ServerError(INSTALL_HINT)
        account = _run_as()
        folder = Path(tempfile.mkdtemp(prefix="dt-postgres-", dir=base))
        try:
            if account is not None:
                os.chown(folder, account.pw_uid, account.pw_gid)
            _initdb(bin_dir, folder, account)
            certificates = _certificates(folder, account)

            def launch() -> PostgresServer:
                server = cls._launch(bin_dir, folder, account, certificates)
                server._provision()
                return server

            return plumbing.launch_with_retries(launch, attempts)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @classmethod
    def _launch(
        cls,
        bin_dir: Path,
        folder: Path,
        account: pwd.struct_passwd | None,
        certificates: dict[str, Path] | None,
        port: int | None = None,
    ) -> PostgresServer:
        port = port or plumbing.free_port()
        log = folder / "postgres.log"
        log.unlink(missing_ok=True)
        args = [
            str(bin_dir / "postgres"),
            "-D", str(folder / "data"),
            "-h", "127.0.0.1",
            "-p", str(port),
            "-k", str(folder),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "shared_buffers=32MB",
            "-c", "max_connections=60",
            "-c", "timezone=UTC",
            "-c", "logging_collector=off",
        ]
        if certificates is not None:
            args += [
                "-c", "ssl=on",
                "-c", f"ssl_cert_file={certificates['server']}",
                "-c", f"ssl_key_file={certificates['server-key']}",
            ]
        with open(log, "ab") as out:
            if account is not None:
                os.chown(log, account.pw_uid, account.pw_gid)
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        server = cls(
            folder=folder, port=port, process=process, bin_dir=bin_dir, certificates=certificates
        )
        server._wait_ready()
        return server

    def _wait_ready(self) -> None:
        import psycopg

        def probe() -> None:
            psycopg.connect(self._superuser_dsn(), connect_timeout=5).close()

        plumbing.wait_ready(self.process, "postgres", probe, psycopg.OperationalError, self._log_tail,
                   STARTUP_TIMEOUT)

    def _superuser_dsn(self, database: str = "postgres") -> str:
        # initdb made the superuser named after the account; trust over the unix socket only
        account = _run_as() or pwd.getpwuid(os.geteuid())
        name = account.pw_name
        return f"host={self.folder} port={self.port} dbname={database} user={name}"

    def _provision(self) -> None:
        import psycopg

        with psycopg.connect(self._superuser_dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ADMIN_USER} LOGIN SUPERUSER PASSWORD '{ADMIN_PASSWORD}'")
            conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ADMIN_USER}")
        with psycopg.connect(self._superuser_dsn(DATABASE), autocommit=True) as conn:
            conn.execute(f"GRANT CONNECT ON DATABASE {DATABASE} TO {USER}")
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {USER}")
            conn.execute(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {ADMIN_USER} IN SCHEMA public "
                f"GRANT SELECT ON TABLES TO {USER}"
            )

    def _log_tail(self, lines: int = 40) -> str:
        return plumbing.log_tail(self.log, "log", lines)

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """psycopg.connect arguments for the ``drivetrain`` role, over TCP."""
        kwargs = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
        }
        return {**kwargs, **overrides}

    def admin(self, **overrides: Any) -> Any:
        """A psycopg connection as a superuser, autocommit on, time zone UTC.

        Tables it creates in ``public`` are readable by the ``drivetrain`` role.
        """
        import psycopg

        kwargs = self.connect_kwargs(
            user=ADMIN_USER, password=ADMIN_PASSWORD, autocommit=True, connect_timeout=5
        )
        kwargs.update(overrides)
        conn = psycopg.connect(**kwargs)
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    def url(self, *, admin: bool = False) -> str:
        """A ``postgresql://`` URL (for psql and ADBC)."""
        user, password = (ADMIN_USER, ADMIN_PASSWORD) if admin else (self.user, self.password)
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{self.database}"

    def restart(self) -> None:
        """Stop the server (fast shutdown: every session ends, every advisory lock goes) and start
        it again on the same port and data directory."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        self.process = self._launch(self.bin_dir, self.folder, _run_as(), self.certificates, port=self.port).process

    def stop(self) -> None:
        """Shut the server down (SIGINT: fast shutdown, then SIGKILL after 15 s), remove its folder."""
        plumbing.stop(self.process, self.folder, signal.SIGINT)


def _certificates(folder: Path, account: pwd.struct_passwd | None) -> dict[str, Path] | None:
    """The MariaDB fixture's CA and "localhost" certificate, readable by the server's account
    (which insists that its key be private to it)."""
    tls = folder / "tls"
    tls.mkdir()
    files = plumbing.make_certificates(tls)
    if files is None:
        return None
    for path in (tls, *files.values()):
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)
    files["server-key"].chmod(0o600)
    return files


def _initdb(bin_dir: Path, folder: Path, account: pwd.struct_passwd | None) -> None:
    args = [
        str(bin_dir / "initdb"),
        "-D", str(folder / "data"),
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )
    if done.returncode != 0:
        raise ServerError(
            f"initdb failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
