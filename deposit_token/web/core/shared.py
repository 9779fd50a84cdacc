"""What the server's worker processes share that the database does not hold: a folder of small JSON files.

``serve --workers N`` runs N processes answering requests (uvicorn workers) beside one that indexes (``--follow``)
and refreshes the derived tables. A request may reach any worker, so what one process knows and another must
show goes through this folder: the follower's status (written by the process that indexes, read by the overview)
and the browser's verify job (its progress written by the worker that runs it, read by whichever worker answers
the page). Sessions, login throttling and CSRF need nothing here: they live in the database or in the request.

Files are replaced whole (written beside, then renamed), so a reader sees the old or the new content, never
half of it. A lock file held open with ``flock`` says "running": the kernel drops it when its process ends, so a
job whose process died is seen as such instead of running for ever.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any


class SharedFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls) -> SharedFolder:
        """A new private folder (mode 0700: a job's mismatches name addresses)."""
        return cls(tempfile.mkdtemp(prefix="deposit-token-web-"))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def write(self, name: str, data: Any) -> None:
        """Replaces `name` with `data` as JSON, atomically."""
        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, ensure_ascii=False)
            os.replace(temporary, self.path / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, name: str) -> Any | None:
        """`name`'s JSON, or None if it was never written."""
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def lock(self, name: str) -> IO[bytes] | None:
        """The exclusive lock `name`, held until the returned file is closed (or its process ends); None if
        another holder (any process, or another open file of this one) has it."""
        handle = (self.path / name).open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def locked(self, name: str) -> bool:
        """Whether someone holds the lock `name` now."""
        handle = self.lock(name)
        if handle is None:
            return True
        handle.close()
        return False
