"""One run per OUTPUT: ``.OUTPUT.videosr-lock`` beside the output, held with flock(2) for the whole run.

The file holds the PID of the run that holds it. A second run on the same OUTPUT fails at once
(:class:`OutputBusyError`, exit 8) naming that PID. The kernel releases the lock when its process ends,
however it ends (a SIGKILL leaves the file, whose lock the next run then takes). The holder removes the
file when it is done, while still holding the lock; a run that locked a file which was meanwhile removed
(or replaced) lets it go and tries again, so two runs never both hold "the" lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator

from .errors import OutputBusyError, OutputError

NAME_MAX = 255  # bytes in one file name (Linux, macOS); os.pathconf gives the folder's own where it can


def hidden_name(d: str, base: str, tail: str, reserve: int = 0) -> str:
    """``.BASE`` + ``tail``: the hidden name videosr gives a file of its own beside the output ``BASE``
    (lock, resume state, temp files; ``reserve``: bytes the caller appends). Where that would be longer than
    the folder's NAME_MAX, BASE is cut and a hash of the whole name added (``.BAS~1a2b3c4d`` + tail), so a
    long OUTPUT name still gets its lock, state and temp files, and always the same ones."""
    try:
        limit = os.pathconf(d, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = NAME_MAX
    limit = min(limit, NAME_MAX) if limit and limit > 0 else NAME_MAX
    name = f".{base}{tail}"
    if len(os.fsencode(name)) + reserve <= limit:
        return name
    import hashlib

    digest = hashlib.sha256(os.fsencode(base)).hexdigest()[:8]
    room = max(0, limit - reserve - len(os.fsencode(f".~{digest}{tail}")))
    cut = os.fsencode(base)[:room].decode("utf-8", "ignore")  # never half a character
    return f".{cut}~{digest}{tail}"


def lock_path(output) -> str:
    path = os.fspath(output)
    d, base = os.path.split(os.path.abspath(path.rstrip("/" + os.sep) or path))
    return os.path.join(d, hidden_name(d, base, ".videosr-lock"))


@contextlib.contextmanager
def output_lock(output) -> Iterator[str | None]:
    """Hold the lock of ``output`` for the ``with`` block (yields the lock file, or None where the file
    system has no flock)."""
    path = lock_path(output)
    fd = _acquire(path, output)
    try:
        yield path if fd is not None else None
    finally:
        if fd is not None:
            _release(fd, path)


def _open(path: str, output) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        raise OutputError(f"{output}: output folder {os.path.dirname(path)} does not exist") from None
    except PermissionError:
        raise OutputError(f"{output}: output folder {os.path.dirname(path)} is not writable") from None
    except OSError as e:
        raise OutputError(f"{output}: cannot create the lock file {path} ({e.strerror})") from None


def _acquire(path: str, output) -> int | None:
    for _ in range(100):
        fd = _open(path, output)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            who = f"videosr process {pid}" if pid else "videosr process"
            raise OutputBusyError(
                f"{output}: another {who} is writing this output (it holds {path}); wait for "
                f"it to finish, or choose another OUTPUT"
            ) from None
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                return None  # no flock on this file system: run unlocked
            raise OutputError(f"{output}: cannot lock {path} ({e.strerror})") from None
        if _is_current(fd, path):
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError:
                pass  # the PID is only for the message of a second run
            return fd
        os.close(fd)  # its holder removed it after we opened it: lock the new file
    raise OutputBusyError(f"{output}: cannot take the lock {path} (it keeps being replaced)")


def _is_current(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except OSError:
        return False


def _holder(fd: int) -> int | None:
    """The PID written in the lock file (its holder may not have written it yet: wait a little)."""
    for _ in range(10):
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.02)
    return None


def _release(fd: int, path: str) -> None:
    try:
        if _is_current(fd, path):
            os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)
