"""Atomic writes: all or nothing, with the usual file mode."""

import os
import stat

import pytest

from deqlib._atomic import atomic_path, write_text_atomic


def test_written_file_has_umask_mode_not_0600(tmp_path):
    path = write_text_atomic(tmp_path / "a" / "b.txt", "hello")
    assert path.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_failure_keeps_old_content_and_removes_temp(tmp_path):
    path = write_text_atomic(tmp_path / "c.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]
