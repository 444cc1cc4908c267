"""Upload bytes, content-addressed (`ab/cd/<sha256>`), and reviewers' evidence per upload."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator


class TooLarge(Exception):
    pass


class FileStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    async def receive(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[Path, str, int]:
        """Stream a body to a temporary file: (path, sha256, size); TooLarge past `max_bytes`."""
        tmp = self.root / "tmp" / uuid.uuid4().hex
        h, size = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(f"upload exceeds {max_bytes} bytes")
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, h.hexdigest(), size

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def keep(self, tmp: Path, sha256: str) -> Path:
        """Move a received file to its content address (same bytes are stored once), durably."""
        dest = self.path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            tmp.unlink()
        else:
            os.replace(tmp, dest)
            fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return dest

    @contextmanager
    def lock(self, sha256: str) -> Iterator[None]:
        """Keeping and erasing the same bytes never interleave (across processes sharing the folder)."""
        path = self.root / "locks" / sha256[:2]
        path.parent.mkdir(exist_ok=True)
        with path.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def erase(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def erase_evidence(self, upload_id: str) -> None:
        shutil.rmtree(self.evidence(upload_id), ignore_errors=True)

    def evidence(self, upload_id: str) -> Path:
        """Folder of an upload's evidence; ids are validated hex by the API before they get here."""
        assert all(c in "0123456789abcdef" for c in upload_id)
        return self.root / "evidence" / upload_id
