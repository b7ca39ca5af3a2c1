"""atomic_write in a folder others can write to: planted symlinks are never written through."""

import os
import stat

import pytest

from resnet.files import atomic_write


def test_a_symlink_at_a_predictable_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "shared" / "report.md"
    target.parent.mkdir()
    # the names a writer that derives its temporary file from the target and its pid would use
    for name in (f".report.md.{os.getpid()}.tmp", "report.md.tmp", ".report.md.tmp"):
        (target.parent / name).symlink_to(victim)
    with atomic_write(target) as f:
        f.write("the report")
    assert victim.read_text() == "precious"
    assert target.read_text() == "the report" and not target.is_symlink()


def test_a_target_that_is_a_symlink_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    target = tmp_path / "model.pt"
    target.symlink_to(victim)
    with atomic_write(target, "wb") as f:
        f.write(b"weights")
    assert victim.read_bytes() == b"precious"
    assert not target.is_symlink() and target.read_bytes() == b"weights"


def test_the_file_gets_the_usual_mode_and_no_temporary_is_left(tmp_path):
    mask = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "a.txt") as f:
            f.write("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "a.txt") as f:
        f.write("half")
        raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
