"""A real PostgreSQL server for tests and measurements: Debian's server binaries (initdb,
pg_ctl) in a temporary folder, on a free loopback port, its unix socket in that folder.

As root (CI, these machines) it runs as the `postgres` user (initdb refuses root), which owns
the folder. `SUPERUSER_PASSWORD` protects TCP connections (scram), so that tests can check
that a password never shows in any text; the socket is trusted (setup only).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER_PASSWORD = "pg-Secret-7f3a9"  # a test server's; never a real one
_INSTALL = ("PostgreSQL's server binaries (initdb, pg_ctl) were not found under "
            "/usr/lib/postgresql/*/bin: apt-get install postgresql")


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name or 0))
    if not found:
        raise RuntimeError(_INSTALL)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """start() / stop(); new_database() -> a URL of a fresh, empty database."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.bin = server_bin()
        # As root the server runs as `postgres`, which must reach its folder: not under a
        # private TMPDIR (each test worker's, mode 0700), but in the machine's /tmp.
        self.root = Path(tempfile.mkdtemp(prefix="pg-test-",
                                          dir="/tmp" if os.geteuid() == 0 else None))
        self.data, self.sock, self.log = (self.root / "data", self.root / "sock",
                                          self.root / "server.log")
        self.port = 0
        self.fsync = fsync
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._count = itertools.count(1)

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()[-2000:]} {log}")

    def start(self) -> "PgServer":
        pwfile = self.root / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        pwfile.unlink()
        (self.sock).mkdir()
        if self._as:
            shutil.chown(self.sock, "postgres")
        self.port = _free_port()
        options = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections=200 -c fsync={'on' if self.fsync else 'off'}")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self.port:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
            self.port = 0
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str = SUPERUSER_PASSWORD) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database (one per test: isolation), as a URL with a password."""
        import psycopg
        name = f"t{os.getpid()}_{next(self._count)}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
