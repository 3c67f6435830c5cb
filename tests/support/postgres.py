"""A real PostgreSQL for the tests: the cluster `.ci/run` started, or one started here.

`HERALD_TEST_POSTGRES_URL` names a server (a superuser URL, e.g. the throwaway cluster
`.ci/run` starts). Without it, where Debian's `postgresql` is installed (initdb, pg_ctl),
a cluster is started once per test session in a temp folder on 127.0.0.1 (as the
`postgres` user when running as root: PostgreSQL refuses root) and stopped at the end.
Elsewhere the tests that need it skip, saying how to run them. Each test gets a database
of its own, dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

HOW_TO = (
    "PostgreSQL is not installed: `apt-get install postgresql` (the tests start a throwaway"
    " cluster themselves), or set HERALD_TEST_POSTGRES_URL=postgresql://user:pass@host/db"
    " to a server where that user may create databases"
)
_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
_names = itertools.count(1)


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in _BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster in a temp folder, listening on 127.0.0.1 only."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
            self.root.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql://herald:herald@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        pw = self.root / "pw"
        pw.write_text("herald\n")
        if self.as_user:
            shutil.chown(pw, "postgres")
        self._run(
            self.initdb, "-D", str(self.data), "-U", "herald", f"--pwfile={pw}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.root} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
            "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A superuser URL of a running PostgreSQL; skips with how to get one where there is none."""
    given = os.environ.get("HERALD_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip(HOW_TO)
    cluster = Cluster(initdb, pg_ctl)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def database_url(server: str, name: str) -> str:
    """`server`'s URL with its database replaced by `name`."""
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A new empty database on the test server, for one test; dropped afterwards."""
    import asyncpg

    name = f"herald_t{os.getpid()}_{next(_names)}"
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield database_url(postgres_server, name)
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
