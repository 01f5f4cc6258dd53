import pytest

from tfnmt.core.errors import UserError
from tfnmt.data import corpus


def write(path, data):
    path.write_bytes(data)
    return str(path)


def test_line_aligned_files_pass(tmp_path):
    src = write(tmp_path / "a.en", b"one\ntwo\n")
    tgt = write(tmp_path / "a.de", "eins\nzw\xc3\xb6\n".encode("latin-1"))
    assert corpus.check_parallel(src, tgt) == 2


@pytest.mark.parametrize("files, message", [
    ({"a.en": b"x\n"}, "does not exist"),
    ({"a.en": b"x\ny\n", "a.de": b"x\n"}, "has 2 lines but"),
    ({"a.en": b"", "a.de": b""}, "is empty"),
    ({"a.en": b"ok\n\xff\xfe bad\n", "a.de": b"a\nb\n"}, "line 2 is not valid UTF-8"),
])
def test_bad_corpora_give_one_clear_error(tmp_path, files, message):
    for name, data in files.items():
        write(tmp_path / name, data)
    with pytest.raises(UserError, match=message):
        corpus.check_parallel(str(tmp_path / "a.en"), str(tmp_path / "a.de"))


def test_a_path_that_is_no_regular_file_is_named_as_such(tmp_path):
    write(tmp_path / "a.de", b"x\n")
    (tmp_path / "a.en").mkdir()
    with pytest.raises(UserError, match="a.en is not a regular file"):
        corpus.check_parallel(str(tmp_path / "a.en"), str(tmp_path / "a.de"))


def test_a_write_that_fails_leaves_the_old_file_and_no_partial_copy(tmp_path):
    path = tmp_path / "out.txt"
    corpus.write_atomic(str(path), "old\n")
    with pytest.raises(UnicodeEncodeError):  # fails inside the write, as a full disk would
        corpus.write_atomic(str(path), "new\n\ud800")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out.txt"]
