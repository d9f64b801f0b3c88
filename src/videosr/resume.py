"""Resume state for `videosr upscale`: a hidden folder beside the output, ``.OUTPUT.videosr-resume/``.

It holds committed segment files (``seg_000000.vsrseg`` ...; see :mod:`videosr.io.segments`) and
``manifest.json``: what was being made (input fingerprint, every option that changes the output, the
model and a hash of its weights) and which segments are done (frame range, first/last pts, size,
sha256). The manifest is replaced atomically (write temp, fsync, rename, fsync the folder); a segment
counts as done only once the manifest lists it, and it is listed only after its file was fsynced and
renamed into place. Anything else in the folder (``*.part``, a half-written final file) is debris of an
interrupted run and is deleted when the run resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any

import torch

from .errors import ResumeError
from .io.segments import fsync_dir

VERSION = 1
MANIFEST = "manifest.json"
HEAD_BYTES = 4 << 20  # the input fingerprint hashes the first 4 MiB (plus size and mtime)


def state_dir(output: str) -> str:
    d, base = os.path.split(os.path.abspath(os.fspath(output)))
    return os.path.join(d, f".{base}.videosr-resume")


def leftover_error(sdir: str) -> ResumeError:
    return ResumeError(f"found resume state from an earlier run at {sdir}: rerun with --resume to continue "
                       f"it, or delete it")


def input_fingerprint(path: str) -> dict[str, Any]:
    """Identity of the input: absolute path, size, mtime and a hash of its first MiBs.
    An image folder: its file names, sizes and mtimes."""
    path = os.path.abspath(path)
    st = os.stat(path)
    h = hashlib.sha256()
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            s = os.stat(os.path.join(path, name))
            h.update(f"{name}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
        return {"path": path, "folder": True, "listing_sha256": h.hexdigest()}
    with open(path, "rb") as f:
        h.update(f.read(HEAD_BYTES))
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": h.hexdigest()}


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
    def create(cls, sdir: str, input_fp: dict, options: dict, segment_frames: int) -> "State":
        os.mkdir(sdir)
        fsync_dir(os.path.dirname(sdir))
        st = cls(sdir, {"version": VERSION, "input": input_fp, "options": options,
                        "segment_frames": segment_frames, "segments": [], "finished": False,
                        "frames": None, "final": None})
        st.save()
        return st

    @classmethod
    def load(cls, sdir: str) -> "State":
        path = os.path.join(sdir, MANIFEST)
        try:
            with open(path) as f:
                m = json.load(f)
        except FileNotFoundError:
            m = None
        except (OSError, ValueError) as e:
            raise ResumeError(f"{path}: unreadable resume manifest ({e}); delete {sdir} and start again") from None
        if m is None:
            # killed between mkdir and the first manifest write: nothing was done yet
            return cls(sdir, {})
        if not isinstance(m, dict) or m.get("version") != VERSION:
            raise ResumeError(f"{path}: resume state from another videosr version; delete {sdir} and start again")
        return cls(sdir, m)

    def save(self) -> None:
        write_json_atomic(os.path.join(self.dir, MANIFEST), self.manifest)

    # ----------------------------------------------------------------------------- checking
    def check(self, input_fp: dict, options: dict, segment_frames: int) -> None:
        """Raise ResumeError naming what differs between this state and the run asked for now."""
        m = self.manifest
        diffs = []
        old_in = m.get("input", {})
        for k in sorted(set(old_in) | set(input_fp)):
            if old_in.get(k) != input_fp.get(k):
                diffs.append(f"input {k}" if k != "head_sha256" else "input content")
        old_opt = m.get("options", {})
        for k in sorted(set(old_opt) | set(options)):
            if old_opt.get(k) != options.get(k):
                diffs.append(f"{k} ({old_opt.get(k)!r} then, {options.get(k)!r} now)")
        if m.get("segment_frames") != segment_frames:
            diffs.append(f"segment ({m.get('segment_frames')} then, {segment_frames} now)")
        if diffs:
            raise ResumeError(f"resume state at {self.dir} was made for a different job: "
                              + ", ".join(diffs[:6]) + "; rerun the original command with --resume, or delete it")

    def verify_segments(self) -> None:
        """Every listed segment must exist with its recorded size and hash; unlisted files are removed."""
        listed = {s["file"] for s in self.manifest.get("segments", [])}
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
                size = os.path.getsize(p)
            except OSError:
                raise ResumeError(f"resume state at {self.dir} is missing {s['file']}; delete it and start again") from None
            if size != s["size"] or sha256_file(p) != s["sha256"]:
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

    def segment_path(self, number: int) -> str:
        return os.path.join(self.dir, f"seg_{number:06d}.vsrseg")

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
        shutil.rmtree(self.dir, ignore_errors=True)
        fsync_dir(os.path.dirname(self.dir))


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
