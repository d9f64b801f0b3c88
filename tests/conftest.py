"""Shared test setup: makes tests/clips.py importable (``from clips import make_video``) and
offers small-clip fixtures."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import clips  # noqa: E402


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread (OpenMP barriers on a shared 2-core box cost ~100x)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def small_clip(tmp_path):
    """A 64x48, 10-frame, 25 fps H.264 mp4 (no audio)."""
    return clips.make_video(tmp_path / "small.mp4")


@pytest.fixture
def make_clip(tmp_path):
    """Factory: make_clip(name, **make_video kwargs) -> path inside tmp_path."""

    def _make(name="clip.mp4", **kw):
        return clips.make_video(tmp_path / name, **kw)

    return _make
