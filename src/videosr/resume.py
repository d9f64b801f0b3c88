"""Resume state for `videosr upscale`: a hidden folder beside the output, ``.OUTPUT.videosr-resume/``.

It holds committed segment files (``seg_000000.vsrseg`` ...; see :mod:`videosr.io.segments`) and
``manifest.json``: what was being made (input identity, every option that changes the output, the
model and a hash of its weights, a random job id that every segment file of the job carries) and which
segments are done (frame range, first/last pts, size, sha256). The manifest is replaced atomically
(write temp, fsync, rename, fsync the folder); a segment counts as done only once the manifest lists
it, and it is listed only after its file was fsynced and renamed into place. Anything else in the folder
(``*.part``, a half-written final file) is debris of an interrupted run and is deleted when the run
resumes.

Nothing in the folder is trusted: a loaded manifest is checked for types, ranges, plain segment names
(``seg_NNNNNN.vsrseg``, nothing else) and contiguous coverage from frame 0 (:func:`manifest_problem`);
the folder is never used through a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from typing import Any

import torch

from .digest import sha256_file  # noqa: F401  (also resume.sha256_file for its users)
from .errors import InputChangedError, ResumeError
from .io.segments import fsync_dir

VERSION = 2  # 2: input inode and last MiB, job id in manifest and segments, checked manifests
MANIFEST = "manifest.json"
EDGE_BYTES = 1 << 20  # the input identity hashes the first and the last MiB (plus size, mtime, inode)
_HEX = re.compile(r"[0-9a-f]+")
_SEGMENT = re.compile(r"seg_[0-9]{6}\.vsrseg")


def state_dir(output: str) -> str:
    from .lock import hidden_name

    d, base = os.path.split(os.path.abspath(os.fspath(output)))
    return os.path.join(d, hidden_name(d, base, ".videosr-resume"))


def leftover_error(sdir: str) -> ResumeError:
    return ResumeError(
        f"found resume state from an earlier run at {sdir}: rerun with --resume to continue it, or delete it"
    )


def check_state_dir(sdir: str) -> None:
    """The state folder is used only as a real folder: never through a symbolic link."""
    if os.path.islink(sdir):
        raise ResumeError(
            f"{sdir}: the resume state folder is a symbolic link; videosr does not follow it: "
            f"delete the link and start again"
        )
    if os.path.lexists(sdir) and not os.path.isdir(sdir):
        raise ResumeError(f"{sdir}: the resume state is not a folder; delete it and start again")


def state_dir_for_run(output, resume: bool, overwrite: bool) -> str:
    """The resume state folder of OUTPUT for a run (never a link; the caller holds the output's lock, so no live
    run is using it). Leftover state without ``resume`` is an error, or, with ``overwrite``, discarded."""
    sdir = state_dir(output)
    check_state_dir(sdir)
    if os.path.lexists(sdir):
        # State that holds no segment (a run killed or failed before its first one: a ulimit, the OOM
        # killer) has nothing to continue: discarded, so it never blocks the next run.
        empty = _holds_nothing(sdir)
        if not (resume or overwrite or empty):
            raise leftover_error(sdir)
        if empty or not resume:
            State(sdir, {}).remove()
    return sdir


def _holds_nothing(sdir: str) -> bool:
    try:
        m = State.load(sdir).manifest
    except ResumeError:
        return False  # damaged: reported as leftover (or by --resume), discarded only with --overwrite
    # "ahead": segments a distributed run (videosr.distributed) finished before the first one
    return not m or (m.get("segments") == [] and not m.get("ahead") and m.get("finished") is False)


def input_fingerprint(path: str) -> dict[str, Any]:
    """Identity of the input: absolute path, size, mtime, inode and a sha256 of its first and last MiB.
    An image folder: its inode and its file names, sizes and mtimes."""
    path = os.path.abspath(path)
    st = os.stat(path)
    h = hashlib.sha256()
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            s = os.stat(os.path.join(path, name))
            h.update(f"{name}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
        return {"path": path, "folder": True, "inode": st.st_ino, "listing_sha256": h.hexdigest()}
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(EDGE_BYTES)).hexdigest()
        f.seek(max(0, os.fstat(f.fileno()).st_size - EDGE_BYTES))
        tail = hashlib.sha256(f.read(EDGE_BYTES)).hexdigest()
    return {
        "path": path,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "head_sha256": head,
        "tail_sha256": tail,
    }


def input_changed(old: dict, now: dict) -> list[str]:
    """What differs between two identities of the same input path (empty: unchanged)."""
    return [k for k in sorted(set(old) | set(now)) if old.get(k) != now.get(k)]


def changed_error(path: str, changed: list[str], sdir: str) -> InputChangedError:
    return InputChangedError(
        f"{path}: the input changed since the resume state was made ({', '.join(changed)}); "
        f"state kept in {sdir}: restore the input and rerun with --resume, or delete it"
    )


def segment_name(number: int) -> str:
    return f"seg_{number:06d}.vsrseg"


def _int(v, lo: int = 0) -> bool:
    return type(v) is int and v >= lo


def _pts(v) -> bool:
    return v is None or type(v) is int


def _sha(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and _HEX.fullmatch(v) is not None


def segment_problem(i: int, seg, start: int, seg_len: int, last: bool) -> str | None:
    """What is wrong with manifest segment entry ``i`` expected to start at frame ``start`` (``last``: it may be
    short), or None; also checks a distributed run's ``ahead`` records."""
    if not isinstance(seg, dict):
        return f"segment entry {i} is not an object"
    if seg.get("file") != segment_name(i):
        return f"segment entry {i} names {seg.get('file')!r}, not {segment_name(i)}"
    if not all(_int(seg.get(k)) for k in ("start", "end", "size")) or not _sha(seg.get("sha256")):
        return f"segment entry {i} has a bad start, end, size or sha256"
    if not all(k in seg and _pts(seg[k]) for k in ("first_pts", "last_pts", "out_last_pts")):
        return f"segment entry {i} has bad timestamps"
    if seg["start"] != start:
        return f"segment entry {i} starts at frame {seg['start']}, not {start} (entries missing, repeated or moved)"
    n = seg["end"] - seg["start"]
    if not (1 <= n <= seg_len) or (n < seg_len and not last):
        return f"segment entry {i} holds {n} frames, not {seg_len}"
    return None


def manifest_problem(m: dict) -> str | None:
    """What is wrong with a manifest (types, ranges, segment names, contiguous coverage), or None."""
    if not isinstance(m.get("input"), dict) or not isinstance(m.get("options"), dict):
        return "input or options is not an object"
    if not (isinstance(m.get("job"), str) and len(m["job"]) == 16 and _HEX.fullmatch(m["job"])):
        return "bad job id"
    seg_len, segs = m.get("segment_frames"), m.get("segments")
    if not _int(seg_len, 1) or not isinstance(segs, list):
        return "bad segment_frames or segments"
    end = 0
    for i, seg in enumerate(segs):
        problem = segment_problem(i, seg, end, seg_len, i == len(segs) - 1)
        if problem:
            return problem
        end = seg["end"]
    finished, frames, final = m.get("finished"), m.get("frames"), m.get("final")
    if not isinstance(finished, bool):
        return "bad finished flag"
    if finished and (frames != end or not _int(frames, 1)):
        return f"finished with frames {frames!r}, but the segments cover {end}"
    if not finished and (frames is not None or final is not None):
        return "frames or final set on an unfinished job"
    if final is not None and not (isinstance(final, dict) and _int(final.get("size")) and _sha(final.get("sha256"))):
        return "bad final record"
    return None


def model_fingerprint(net) -> str | None:
    """sha256 over the model's state dict (names, shapes, dtypes, bytes): the weights actually used,
    whether shipped, third-party, a training checkpoint or a random initialisation."""
    try:
        sd = net.state_dict()
    except Exception:  # noqa: BLE001 - e.g. an onnxruntime wrapper
        sd = {}
    if not sd:
        v = getattr(net, "variant", None)
        return getattr(v, "sha256", None)
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        h.update(f"{k}\0{tuple(t.shape)}\0{t.dtype}\n".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


class State:
    """The resume folder of one output. ``manifest`` is a plain dict (see module docstring)."""

    def __init__(self, sdir: str, manifest: dict[str, Any]):
        self.dir = sdir
        self.manifest = manifest

    # ----------------------------------------------------------------------------- creating
    @classmethod
    def create(cls, sdir: str, input_fp: dict, options: dict, segment_frames: int) -> State:
        os.mkdir(sdir)
        fsync_dir(os.path.dirname(sdir))
        st = cls(
            sdir,
            {
                "version": VERSION,
                "job": secrets.token_hex(8),
                "input": input_fp,
                "options": options,
                "segment_frames": segment_frames,
                "segments": [],
                "finished": False,
                "frames": None,
                "final": None,
            },
        )
        st.save()
        return st

    @classmethod
    def load(cls, sdir: str) -> State:
        check_state_dir(sdir)
        path = os.path.join(sdir, MANIFEST)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with open(fd) as f:
                m = json.load(f)
        except FileNotFoundError:
            m = None
        except (OSError, ValueError, RecursionError) as e:
            raise ResumeError(f"{path}: unreadable resume manifest ({e}); delete {sdir} and start again") from None
        if m is None:
            # killed between mkdir and the first manifest write: nothing was done yet
            return cls(sdir, {})
        if not isinstance(m, dict) or m.get("version") != VERSION:
            raise ResumeError(f"{path}: resume state from another videosr version; delete {sdir} and start again")
        problem = manifest_problem(m)
        if problem:
            raise ResumeError(f"{path}: damaged resume manifest ({problem}); delete {sdir} and start again")
        return cls(sdir, m)

    def save(self) -> None:
        write_json_atomic(os.path.join(self.dir, MANIFEST), self.manifest)

    # ----------------------------------------------------------------------------- checking
    def check(self, input_fp: dict, options: dict, segment_frames: int) -> None:
        """Raise ResumeError naming what differs between this state and the run asked for now (another input
        path, other options), or InputChangedError when the same input path now holds another file."""
        m = self.manifest
        diffs = []
        old_in = m.get("input", {})
        if old_in.get("path") != input_fp.get("path"):
            diffs.append("input path")
        old_opt = m.get("options", {})
        for k in sorted(set(old_opt) | set(options)):
            if old_opt.get(k) != options.get(k):
                diffs.append(f"{k} ({old_opt.get(k)!r} then, {options.get(k)!r} now)")
        if m.get("segment_frames") != segment_frames:
            diffs.append(f"segment ({m.get('segment_frames')} then, {segment_frames} now)")
        if diffs:
            raise ResumeError(
                f"resume state at {self.dir} was made for a different job: "
                + ", ".join(diffs[:6])
                + "; rerun the original command with --resume, or delete it"
            )
        self.check_input(input_fp)

    def check_input(self, input_fp: dict) -> None:
        """The input must be the very file (or folder) the state was made from."""
        changed = input_changed(self.manifest.get("input", {}), input_fp)
        if changed:
            raise changed_error(input_fp.get("path", "input"), changed, self.dir)

    def check_complete(self, frames: int) -> None:
        """Before the join: the segments cover frames 0 .. ``frames`` - 1, contiguously, nothing else."""
        problem = manifest_problem(self.manifest)
        if problem is None and self.done_frames != frames:
            problem = f"the segments cover {self.done_frames} frames, the input has {frames}"
        if problem:
            raise ResumeError(f"resume state at {self.dir}: {problem}; delete it and start again")

    def segment_expect(self) -> list[dict]:
        """Per listed segment, what its file must hold (see videosr.io.segments.concat_segments)."""
        return [
            {"tag": {"job": self.manifest["job"], "start": s["start"]}, "frames": s["end"] - s["start"]}
            for s in self.manifest["segments"]
        ]

    def verify_segments(self) -> None:
        """Every listed segment must exist with its recorded size and hash; unlisted files are removed."""
        check_state_dir(self.dir)
        listed = {s["file"] for s in self.manifest.get("segments", [])}
        ahead = self.manifest.get("ahead")  # segments a distributed run finished out of order (videosr.distributed)
        if isinstance(ahead, list):
            listed |= {
                s["file"]
                for s in ahead
                if isinstance(s, dict) and isinstance(s.get("file"), str) and _SEGMENT.fullmatch(s["file"])
            }
        for name in os.listdir(self.dir):
            if name == MANIFEST or name in listed:
                continue
            p = os.path.join(self.dir, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        for s in self.manifest.get("segments", []):
            p = os.path.join(self.dir, s["file"])
            try:
                st = os.lstat(p)
            except OSError:
                raise ResumeError(
                    f"resume state at {self.dir} is missing {s['file']}; delete it and start again"
                ) from None
            if not stat.S_ISREG(st.st_mode):
                raise ResumeError(
                    f"resume state at {self.dir}: {s['file']} is not a regular file; delete it and start again"
                )
            if st.st_size != s["size"] or sha256_file(p) != s["sha256"]:
                raise ResumeError(f"resume state at {self.dir}: {s['file']} is damaged; delete it and start again")

    # ----------------------------------------------------------------------------- progress
    @property
    def done_frames(self) -> int:
        segs = self.manifest.get("segments", [])
        return segs[-1]["end"] if segs else 0

    @property
    def last_pts(self) -> int | None:
        segs = self.manifest.get("segments", [])
        return segs[-1]["out_last_pts"] if segs else None

    @property
    def job(self) -> str:
        return self.manifest["job"]

    def segment_path(self, number: int) -> str:
        return os.path.join(self.dir, segment_name(number))

    def commit(self, record: dict) -> None:
        """List a finished segment (``file, start, end, first_pts, last_pts, out_last_pts, size, sha256``)."""
        self.manifest["segments"].append(record)
        self.save()

    def finish(self, frames: int) -> None:
        self.manifest["finished"] = True
        self.manifest["frames"] = frames
        self.save()

    def segment_files(self) -> list[str]:
        return [os.path.join(self.dir, s["file"]) for s in self.manifest["segments"]]

    def remove(self) -> None:
        if os.path.islink(self.dir):  # never delete through a link (refused at load; a link may appear since)
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        fsync_dir(os.path.dirname(self.dir))
