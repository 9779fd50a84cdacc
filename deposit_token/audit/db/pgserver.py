"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` in a fresh temporary folder, started with
``pg_ctl`` on a free loopback port, stopped and deleted at the end.

Only PostgreSQL's server binaries are needed (Debian: ``apt-get install -y postgresql``); no running service, no
configuration. ``initdb`` refuses to run as root, so under root the folder is handed to the ``postgres`` system
user and the binaries run through ``runuser -u postgres``.

    with throwaway_server() as server:
        engine = create_engine(server.url())

Also here: creating / dropping a database on any server (a throwaway one or a user's own), so tests and
benchmarks can give each run a database of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from deposit_token.errors import DepositTokenError
from deposit_token.processes import free_port, process_alive

INSTALL_HINT = "install Debian's postgresql package (apt-get install -y postgresql)"
# Points the binary search at one folder (e.g. an empty one, to see what a machine without PostgreSQL does).
BINDIR_ENV = "DEPOSIT_TOKEN_PG_BINDIR"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60

# A throwaway server holds nothing worth keeping, so durability is traded for speed: no fsync, no WAL flush
# on commit, no full-page images. A crash loses the data, which is deleted at the end anyway.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PgServerError(DepositTokenError, RuntimeError):
    """A throwaway server could not be found, started or stopped (the message is one sentence)."""


@dataclass(frozen=True)
class PgServer:
    """A running throwaway server: reach it over TCP at 127.0.0.1:port as the trusted superuser."""

    port: int
    folder: Path  # the temporary folder: data directory, unix socket, log
    bindir: Path
    host: str = "127.0.0.1"
    user: str = SUPERUSER

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of one database on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"


# --- finding the binaries -------------------------------------------------------------------------------------


def _has_server(folder: Path) -> bool:
    return (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()


def _pg_config_bindir() -> Path | None:
    """pg_config's bindir; on Debian the client's pg_config may name a folder with no server binaries."""
    if not shutil.which("pg_config"):
        return None
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip())


def _debian_bindirs() -> list[Path]:
    """/usr/lib/postgresql/<major>/bin, newest major first."""
    found = glob.glob("/usr/lib/postgresql/*/bin")
    return sorted(
        (Path(f) for f in found), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1, reverse=True
    )


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl; raises PgServerError when there is none."""
    forced = os.environ.get(BINDIR_ENV)
    candidates: list[Path | None]
    if forced:
        candidates = [Path(forced)]
    else:
        on_path = shutil.which("initdb")
        candidates = [_pg_config_bindir(), *_debian_bindirs(), Path(on_path).resolve().parent if on_path else None]
    for folder in candidates:
        if folder and _has_server(folder):
            return folder
    where = f" in {forced} ({BINDIR_ENV})" if forced else ""
    raise PgServerError(f"PostgreSQL server binaries not found{where}: {INSTALL_HINT}")


# --- running them ---------------------------------------------------------------------------------------------


def _as_server_user() -> list[str]:
    """Command prefix that runs a binary as a user initdb accepts: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PgServerError(
            f"running as root needs the '{SUPERUSER}' system user to own the server: {INSTALL_HINT}"
        ) from None
    if not shutil.which("runuser"):
        raise PgServerError("running as root needs `runuser` (util-linux) to start PostgreSQL as 'postgres'")
    return ["runuser", "-u", SUPERUSER, "--"]


def _run(command: list[str], folder: Path, what: str) -> None:
    try:
        done = subprocess.run(
            _as_server_user() + command,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise PgServerError(f"PostgreSQL {what} failed: {err}") from None
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[:300]
        raise PgServerError(f"PostgreSQL {what} failed: {detail}")


def _make_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="deposit-token-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SUPERUSER)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


def _initdb(bindir: Path, folder: Path) -> None:
    # --no-sync: nothing to make durable; C locale: same collation on every machine, and no locale to install.
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(folder / "data"),
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-U",
            SUPERUSER,
            "--no-sync",
        ],
        folder,
        "initdb",
    )


def _start(bindir: Path, folder: Path, port: int) -> None:
    options = [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {folder}"]
    options += [f"-c {setting}" for setting in FAST_SETTINGS]
    # -w: return only once the server accepts connections (or fails, with the reason in the log)
    _run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(folder / "data"),
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            " ".join(options),
            "start",
        ],
        folder,
        "start",
    )


def _stop(bindir: Path, folder: Path) -> None:
    # immediate: nothing to flush or checkpoint, the data is deleted right after
    _run([str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"], folder, "stop")


def _log_tail(folder: Path) -> str:
    try:
        lines = (folder / "server.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def start_server(attempts: int = 3) -> PgServer:
    """Start a throwaway server; the caller must `stop_server` it. Raises PgServerError with the reason."""
    bindir = find_bindir()
    folder = _make_folder()
    try:
        _initdb(bindir, folder)
        for attempt in range(attempts):  # another process may take the free port before the server binds it
            port = free_port()
            try:
                _start(bindir, folder, port)
                _spawn_watchdog(bindir, folder)
                return PgServer(port=port, folder=folder, bindir=bindir)
            except PgServerError as err:
                if attempt == attempts - 1:
                    tail = _log_tail(folder)
                    raise PgServerError(f"{err} {tail}".strip()) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def stop_server(server: PgServer) -> None:
    """Stop the server and delete its folder (the folder goes even when stopping fails; the watchdog then
    exits by itself)."""
    _stop_folder(server.bindir, server.folder)


def _stop_folder(bindir: Path, folder: Path) -> None:
    try:
        if (folder / "data" / "postmaster.pid").exists():
            _stop(bindir, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the watchdog ---------------------------------------------------------------------------------------------
# pg_ctl detaches the server, so it outlives a test run that is killed (`timeout`, SIGKILL, a closed terminal)
# before it could stop it. A detached watchdog process stops and deletes it once its owner is gone.


def _spawn_watchdog(bindir: Path, folder: Path) -> None:
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deposit_token.audit.db.pgserver",
            "--watch",
            str(os.getpid()),
            str(bindir),
            str(folder),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=tempfile.gettempdir(),
    )


def _watch(owner: int, bindir: Path, folder: Path, every_s: float = 1.0) -> None:
    """Wait until `owner` has ended or the server was stopped (its folder gone); then make sure it is gone."""
    while process_alive(owner) and folder.exists():
        time.sleep(every_s)
    if folder.exists():
        _stop_folder(bindir, folder)


@contextmanager
def throwaway_server() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)


# --- databases on any server ----------------------------------------------------------------------------------


def _libpq(url: str | URL) -> str:
    """A libpq connection URI (what psycopg.connect takes) for a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def psycopg_url(url: str | URL) -> str:
    """`url` with SQLAlchemy's psycopg 3 driver (a plain postgresql:// URL would ask for psycopg2)."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def with_database(url: str | URL, database: str) -> str:
    """The same server, user and options as `url`, another database."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def unreachable(url: str | URL, timeout_s: int = 5) -> str | None:
    """Why `url` cannot be connected to (one line), or None when it can."""
    import psycopg

    try:
        with psycopg.connect(_libpq(url), connect_timeout=timeout_s, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        detail = " ".join(str(err).split())[:200]
        return f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {detail}"
    return None


def create_database(url: str | URL, name: str) -> str:
    """Create database `name` on the server of `url` (whose user may create databases); returns its URL."""
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def drop_database(url: str | URL, name: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--watch":
        _watch(int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
