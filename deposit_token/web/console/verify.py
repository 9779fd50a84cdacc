"""Verification from the browser: ``audit.verify`` (every indexed fact read back from the node at the checkpoint
block) as a background job in a thread of the worker process that took the request, one at a time across the
workers. Its progress is kept in the server's shared folder (``core.shared``), so any worker shows it: the page
shows the progress (refreshing itself while it runs) and lists the mismatches. It needs the node the server
follows (``serve --follow`` / ``python -m deposit_token.web --rpc-url ... --token ...``); without one the page
says so and offers nothing."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields
from typing import IO, Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from deposit_token.audit.verify import Mismatch, verify
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError
from deposit_token.errors import DepositTokenError
from deposit_token.web.console import NavItem
from deposit_token.web.core.auth import CurrentUser, console_router
from deposit_token.web.core.config import Follow
from deposit_token.web.core.pages import render
from deposit_token.web.core.shared import SharedFolder
from deposit_token.web.core.state import WebState, state_of

router = console_router()
NAV = NavItem("/console/verify", "nav.verify", order=60)


@dataclass
class VerifyJob:
    started_by: str
    started_at: int
    phase: str = "connecting"  # connecting, checking, done, failed
    finished_at: int | None = None
    block: int | None = None
    head: int | None = None
    checks: int = 0
    skipped_note: str | None = None
    code_note: str | None = None
    error: str | None = None
    # check, subject, database, chain (audit.verify.Mismatch; the values as the page shows them)
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.phase in ("connecting", "checking")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyJob:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _shown(mismatch: Mismatch) -> dict[str, Any]:
    def value(v: Any) -> Any:
        return v if v is None or isinstance(v, str | int | float | bool) else str(v)

    return {"check": mismatch.check, "subject": mismatch.subject, "database": value(mismatch.database),
            "chain": value(mismatch.chain)}  # fmt: skip


class VerifyJobs:
    """The server's verification job: the latest one, in the server's shared folder (``core.shared``), so that
    every worker process answers the page alike; a lock held while it runs, so that one runs at a time across
    the workers, and so that a job whose process died shows as failed rather than running for ever."""

    FILE = "verify-job.json"
    LOCK = "verify-job.lock"

    def __init__(self, shared: SharedFolder):
        self.shared = shared

    def latest(self) -> VerifyJob | None:
        data = self.shared.read(self.FILE)
        if data is None:
            return None
        job = VerifyJob.from_json(data)
        if job.running and not self.shared.locked(self.LOCK):
            # it may have finished between the two reads: read again before calling it lost
            job = VerifyJob.from_json(self.shared.read(self.FILE) or data)
            if job.running:
                job.phase, job.error = "failed", "the server process running it stopped"
        return job

    def start(self, state: WebState, follow: Follow, who: str) -> bool:
        """Starts a job in a thread of this process unless one runs in any worker (False then)."""
        held = self.shared.lock(self.LOCK)
        if held is None:
            return False
        try:
            job = VerifyJob(started_by=who, started_at=state.now())
            self.shared.write(self.FILE, job.to_json())
            threading.Thread(
                target=self._run, args=(state, follow, job, held), name="audit-verify", daemon=True
            ).start()
        except BaseException:
            held.close()
            raise
        return True

    def _run(self, state: WebState, follow: Follow, job: VerifyJob, held: IO[bytes]) -> None:
        rpc = RpcClient(follow.rpc_url)
        try:
            job.head = rpc.block_number()
            job.phase = "checking"
            self.shared.write(self.FILE, job.to_json())
            result = verify(rpc, state.engine, follow.token)
            job.block, job.checks = result.block, result.checks
            job.mismatches = [_shown(m) for m in result.mismatches]
            job.skipped_note, job.code_note = result.skipped_note, result.code_note
            job.phase = "done"
        except (DepositTokenError, RpcError, RpcConnectionError, OSError) as err:
            job.error = str(err).splitlines()[0] if str(err) else type(err).__name__
            job.phase = "failed"
        finally:
            job.finished_at = state.now()
            try:
                self.shared.write(self.FILE, job.to_json())
            finally:
                held.close()  # after the final state is written: a reader never sees it unlocked and running
                rpc.close()


def jobs_of(request: Request) -> VerifyJobs:
    return VerifyJobs(state_of(request).shared)


@router.get("/console/verify")
def page(request: Request) -> Response:
    state = state_of(request)
    job = jobs_of(request).latest()
    elapsed = None if job is None else (job.finished_at or state.now()) - job.started_at
    return render(
        request,
        "console/verify.html",
        {"available": state.config.follow is not None, "job": job, "elapsed": elapsed},
    )


@router.post("/console/verify")
def start(request: Request, principal: CurrentUser) -> Response:
    state = state_of(request)
    if state.config.follow is None:
        return render(request, "console/verify.html", {"available": False, "job": None, "elapsed": None}, 409)
    jobs_of(request).start(state, state.config.follow, principal.name)
    return RedirectResponse("/console/verify", status_code=303)
