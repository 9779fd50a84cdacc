"""The server with several worker processes (``python -m deposit_token.web --workers 2 --rpc-url ...``), as a
service manager runs it: a real process tree over a copy of the pilot's database, following the pilot's node.

Each check pins one keep-alive connection to each worker (which process accepted a connection is read from
/proc: the socket's inode in /proc/net/tcp, then the process holding it), so that "worker A wrote, worker B
answered" is what is tested, not what the kernel's accept order happened to give: a login made through one
worker holds on the other, the verify job started through one is seen alike by both while it runs and when it
is done, and both streams of live payments deliver a new block's payments, indexed by the parent's follower."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from support.web import User, csrf_of, new_user

from deposit_token import paths
from deposit_token.processes import free_port, log_tail
from deposit_token.web.core import accounts

pytestmark = pytest.mark.chain  # the folder's pilot chain runs on a node of its own

WORKERS = 2


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    db_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        """The worker processes: the server's children started by multiprocessing's spawn."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"spawn_main" in command:
                found.append(int(entry.name))
        return sorted(found)


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the loopback connection from `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
        if (
            state == "01"
            and int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) == client_port
        ):
            return inode
    return None


def _holder(pids: list[int], inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


@dataclass
class Probe:
    """One keep-alive connection, accepted by one known worker, with its own cookies."""

    connection: http.client.HTTPConnection
    worker: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        headers = {"Accept": "text/html"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        answer = self.connection.getresponse()
        text = answer.read().decode()
        for cookie in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return answer.status, text


def probes(server: Server) -> list[Probe]:
    """One connection per worker (connections are opened until each worker has accepted one)."""
    workers = server.workers()
    assert len(workers) == WORKERS, f"{len(workers)} worker processes, not {WORKERS}"
    pinned: dict[int, Probe] = {}
    spare = []
    for _ in range(60):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.connect()
        client_port = connection.sock.getsockname()[1]
        holder = None
        for _ in range(50):  # the worker's loop accepts it within a moment
            inode = _socket_inode(server.port, client_port)
            holder = _holder(workers, inode) if inode else None
            if holder is not None:
                break
            time.sleep(0.02)
        if holder is not None and holder not in pinned:
            pinned[holder] = Probe(connection, holder)
            if len(pinned) == WORKERS:
                break
        else:
            spare.append(connection)
    for connection in spare:
        connection.close()
    assert len(pinned) == WORKERS, f"connections reached {len(pinned)} of {WORKERS} workers"
    return [pinned[pid] for pid in sorted(pinned)]


@pytest.fixture(scope="module")
def server(pilot, tmp_path_factory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("web-workers")
    db_url = pilot.copy_db(folder)
    port = free_port()
    log = folder / "server.log"
    demo = pilot.demo
    command = [sys.executable, "-m", "deposit_token.web", "--db", db_url, "--port", str(port)]
    command += ["--workers", str(WORKERS), "--rpc-url", pilot.rpc_url, "--token", demo.token]
    command += ["--start-block", str(demo.deploy_block)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=paths.ROOT)
    running = Server(process, port, log, db_url)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the server stopped: {log_tail(log)}"
            assert time.monotonic() < deadline, f"the server did not answer: {log_tail(log)}"
            try:
                if requests.get(f"{running.url}/api/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        while len(running.workers()) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, log_tail(log)


@pytest.fixture(scope="module")
def auditor(server) -> User:
    return new_user(server.db_url, accounts.AUDITOR, "workers")


def log_in(first: Probe, second: Probe, user: User) -> None:
    """The login form from one worker, posted to the other; the session then goes to both probes."""
    status, form = first.request("GET", "/login")
    assert status == 200
    second.cookies.update(first.cookies)  # the form's CSRF cookie
    status, _ = second.request(
        "POST",
        "/login",
        {
            "name": user.name,
            "password": user.password,
            "code": user.code(),
            "csrf_token": csrf_of(form),
            "next": "/console",
        },
    )
    assert status == 303
    first.cookies.update(second.cookies)


def test_a_login_through_one_worker_holds_on_the_other(server, auditor):
    a, b = probes(server)
    assert a.worker != b.worker
    log_in(a, b, auditor)
    for probe in (a, b):
        status, page = probe.request("GET", "/console")
        assert status == 200 and auditor.name in page
    # the follower runs in the parent process; both workers show its status
    assert all('class="ok"' in p.request("GET", "/console")[1] for p in (a, b))
    status, page = a.request("GET", "/console/payments")
    _, same = b.request("GET", "/console/payments")
    assert status == 200 and re.findall(r'data-key="([^"]+)"', page) == re.findall(r'data-key="([^"]+)"', same)


def test_the_verify_job_is_seen_alike_by_every_worker(server, pilot):
    user = new_user(server.db_url, accounts.AUDITOR, "verifier")
    a, b = probes(server)
    log_in(a, b, user)
    _, overview = a.request("GET", "/console")
    status, _ = a.request("POST", "/console/verify", {"csrf_token": csrf_of(overview)})
    assert status == 303
    deadline = time.monotonic() + 90
    while True:
        seen = []
        for probe in (a, b):
            status, page = probe.request("GET", "/console/verify")
            assert status == 200 and 'id="verify-job"' in page, page[:300]
            seen.append((re.search(r'data-phase="(\w+)"', page).group(1), user.name in page))
        assert all(who for _, who in seen)  # both show the job this user started
        phases = {phase for phase, _ in seen}
        if phases <= {"done", "failed"} or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    pages = [probe.request("GET", "/console/verify")[1] for probe in (a, b)]
    assert all('data-phase="done"' in page and "불일치 0건" in page for page in pages), pages[0][-800:]
    result = [re.search(r'id="verify-result">([^<]+)<', page).group(1) for page in pages]
    assert result[0] == result[1]


def _stream(probe: Probe) -> http.client.HTTPResponse:
    headers = {"Accept": "text/event-stream", "Cookie": "; ".join(f"{k}={v}" for k, v in probe.cookies.items())}
    probe.connection.request("GET", "/console/live/payments", headers=headers)
    answer = probe.connection.getresponse()
    assert answer.status == 200
    return answer


def _ids(answer: http.client.HTTPResponse, wanted: int, deadline: float) -> list[str]:
    ids: list[str] = []
    while len(ids) < wanted and time.monotonic() < deadline:
        line = answer.readline().decode()
        if not line:
            break
        if line.startswith("id: "):
            ids.append(line[4:].strip())
        elif line.startswith("data: "):
            assert "KST" in json.loads(line[6:])["time"]
    return ids


def test_every_worker_streams_new_payments(server, pilot):
    user = new_user(server.db_url, accounts.AUDITOR, "live")
    a, b = probes(server)
    log_in(a, b, user)
    streams = [_stream(a), _stream(b)]
    for stream in streams:
        assert stream.readline().startswith(b"retry:")  # each stream has read its starting position
    time.sleep(1.0)
    _day, paid = pilot.pay_more()
    assert paid > 0
    deadline = time.monotonic() + 30
    got = [_ids(stream, paid, deadline) for stream in streams]
    assert len(got[0]) == paid and got[0] == got[1]
    for probe in (a, b):
        probe.connection.close()
