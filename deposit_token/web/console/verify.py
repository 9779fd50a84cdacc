"""Verification from the browser: ``audit.verify`` (every indexed fact read back from the node at the checkpoint
block) as a background job in a thread of the server, one at a time; the page shows its progress (refreshing
itself while it runs) and lists the mismatches. It needs the node the server follows (``serve --follow`` /
``python -m deposit_token.web --rpc-url ... --token ...``); without one the page says so and offers nothing."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from deposit_token.audit.verify import Mismatch, verify
from deposit_token.chain.rpc import RpcClient, RpcConnectionError, RpcError
from deposit_token.errors import DepositTokenError
from deposit_token.web.console import NavItem
from deposit_token.web.core.auth import CurrentUser, console_router
from deposit_token.web.core.config import Follow
from deposit_token.web.core.pages import render
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
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.phase in ("connecting", "checking")


class VerifyJobs:
    """The server's verification jobs: the latest one, and a lock so that one runs at a time."""

    def __init__(self) -> None:
        self.latest: VerifyJob | None = None
        self._lock = threading.Lock()

    def start(self, state: WebState, follow: Follow, who: str) -> bool:
        """Starts a job unless one runs (False then)."""
        with self._lock:
            if self.latest is not None and self.latest.running:
                return False
            job = VerifyJob(started_by=who, started_at=state.now())
            self.latest = job
        threading.Thread(target=self._run, args=(state, follow, job), name="audit-verify", daemon=True).start()
        return True

    @staticmethod
    def _run(state: WebState, follow: Follow, job: VerifyJob) -> None:
        rpc = RpcClient(follow.rpc_url)
        try:
            job.head = rpc.block_number()
            job.phase = "checking"
            result = verify(rpc, state.engine, follow.token)
            job.block, job.checks, job.mismatches = result.block, result.checks, list(result.mismatches)
            job.skipped_note, job.code_note = result.skipped_note, result.code_note
            job.phase = "done"
        except (DepositTokenError, RpcError, RpcConnectionError, OSError) as err:
            job.error = str(err).splitlines()[0] if str(err) else type(err).__name__
            job.phase = "failed"
        finally:
            job.finished_at = state.now()
            rpc.close()


_MAKING = threading.Lock()


def jobs_of(request: Request) -> VerifyJobs:
    """The app's jobs (one registry per app: two servers in one process keep theirs apart)."""
    app_state = request.app.state
    with _MAKING:
        if not hasattr(app_state, "verify_jobs"):
            app_state.verify_jobs = VerifyJobs()
    found: VerifyJobs = app_state.verify_jobs
    return found


@router.get("/console/verify")
def page(request: Request) -> Response:
    state = state_of(request)
    job = jobs_of(request).latest
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
