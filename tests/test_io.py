"""``odetx.io``: a destination changes only on a clean exit, never holds half a file, and
gets the mode any plainly created file gets."""

import os

import pytest

from odetx.io import atomic_write, write_text

OLD = b"old bytes\n"


def leftovers(folder, name):
    """Temporary files ``atomic_write`` would leave beside ``name``: ``.NAME.*.tmp``."""
    return sorted(p.name for p in folder.glob(f".{name}.*.tmp"))


def test_a_clean_exit_replaces_the_file_and_a_reader_never_sees_half_of_it(tmp_path):
    dest = tmp_path / "metrics.csv"
    dest.write_bytes(OLD)
    with atomic_write(dest) as (f, tmp):
        f.write(b"new ")
        f.flush()
        # Mid-write: the destination still holds the old file, the bytes go to a hidden
        # temporary file beside it.
        assert dest.read_bytes() == OLD
        assert tmp.parent == tmp_path and leftovers(tmp_path, dest.name) == [tmp.name]
        assert tmp.read_bytes() == b"new "
        f.write(b"content")
    assert dest.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_exception_in_the_block_keeps_the_old_bytes_and_no_temporary_file(tmp_path, error):
    dest = tmp_path / "last.pt"
    dest.write_bytes(OLD)
    with pytest.raises(type(error)):
        with atomic_write(dest) as (f, _):
            f.write(b"half a checkpoint")
            f.flush()
            raise error
    assert dest.read_bytes() == OLD
    assert leftovers(tmp_path, dest.name) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_failed_first_write_creates_nothing(tmp_path):
    dest = tmp_path / "summary.json"
    with pytest.raises(ValueError):
        with atomic_write(dest, "w") as (f, _):
            f.write("{")
            raise ValueError("not serialisable")
    assert list(tmp_path.iterdir()) == []


def test_write_text_writes_utf8_and_keeps_line_endings(tmp_path):
    dest = tmp_path / "config.yaml"
    dest.write_bytes(OLD)
    text = "a: 1\nb: ñ\r\nc: 3\n"
    write_text(dest, text)
    assert dest.read_bytes() == text.encode("utf-8")  # no newline translation, UTF-8
    assert leftovers(tmp_path, dest.name) == []


@pytest.fixture(params=[0o022, 0o002, 0o027])
def umask(request):
    """Run the test under ``request.param`` as the process umask, then restore it."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_the_file_gets_the_mode_a_plainly_created_file_gets(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # open(..., "w") under this umask
    want = plain.stat().st_mode & 0o777
    assert want == 0o666 & ~umask  # (the reference itself is what the umask says)
    new = tmp_path / "new.txt"
    write_text(new, "x")
    assert new.stat().st_mode & 0o777 == want  # not mkstemp's private 0o600
    binary = tmp_path / "new.bin"
    with atomic_write(binary) as (f, _):
        f.write(b"x")
    assert binary.stat().st_mode & 0o777 == want
