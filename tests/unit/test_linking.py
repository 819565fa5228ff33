"""The Linker's fallback state machine, and the built-in copy and hardlink link functions."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from holoclone_venv.store.catalog import FIXED_MTIME
from holoclone_venv.errors import MaterializeError, StrictModeError, Unsupported
from holoclone_venv.materialize.linking import COPY, HARDLINK, LinkMethod, Linker, copy, hardlink


class Recorder:
    """Link functions that really write the target, or raise, and remember every call."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def writer(self, name):
        def link(source, target, dir_fd, mode, mtime):
            self.calls.append((name, os.path.basename(target)))
            with open(source, "rb") as src, open(target, "xb") as dst:
                dst.write(src.read())
        return link

    def unsupported(self, name, reason, err=errno.EOPNOTSUPP, only=None):
        """Raise Unsupported (for every file, or only for base names in ``only``), else write."""
        write = self.writer(name)

        def link(source, target, dir_fd, mode, mtime):
            if only is None or os.path.basename(target) in only:
                self.calls.append((name, os.path.basename(target)))
                raise Unsupported(reason, err)
            write(source, target, dir_fd, mode, mtime)
        return link

    def failing(self, name, error):
        def link(source, target, dir_fd, mode, mtime):
            self.calls.append((name, os.path.basename(target)))
            raise error
        return link

    def count(self, name):
        return sum(1 for called, _ in self.calls if called == name)


@pytest.fixture
def pair(tmp_path):
    objects = tmp_path / "store" / "objects"
    env = tmp_path / "env"
    objects.mkdir(parents=True)
    env.mkdir()
    source = objects / "obj"
    source.write_bytes(b"content")
    return objects, env, source


def _link(linker, chain, pair, name):
    objects, env, source = pair
    return linker.link(chain, (str(objects), str(env)), str(source), str(env / name), None, 0o444, None)


def test_unsupported_first_method_is_disabled_for_the_pair_with_one_fallback(pair):
    rec = Recorder()
    fast = LinkMethod("fast", rec.unsupported("fast", "FASTCLONE failed: not here"), counts_as="reflinked")
    slow = LinkMethod("slow", rec.writer("slow"))
    linker = Linker(methods=(fast, slow))
    used = [_link(linker, (fast, slow), pair, f"f{i}") for i in range(5)]
    assert [m.name for m in used] == ["slow"] * 5
    assert rec.count("fast") == 1, "a method unsupported on the first file must not be tried again"
    assert len(linker.fallbacks) == 1
    fallback = linker.fallbacks[0]
    assert (fallback.method, fallback.to, fallback.reason, fallback.errno) == (
        "fast", "slow", "FASTCLONE failed: not here", errno.EOPNOTSUPP)
    assert (fallback.source_dir, fallback.target_dir) == (str(pair[0]), str(pair[1]))
    assert fallback.files == 1
    assert (pair[1] / "f4").read_bytes() == b"content"


def test_disabled_method_is_still_tried_for_another_target_directory(pair, tmp_path):
    rec = Recorder()
    fast = LinkMethod("fast", rec.unsupported("fast", "no", only={"a"}))
    slow = LinkMethod("slow", rec.writer("slow"))
    linker = Linker(methods=(fast, slow))
    objects, env, source = pair
    other = tmp_path / "other-env"
    other.mkdir()
    assert _link(linker, (fast, slow), pair, "a").name == "slow"
    used = linker.link((fast, slow), (str(objects), str(other)), str(source), str(other / "b"), None, 0o444, None)
    assert used.name == "fast"


def test_method_that_worked_falls_back_for_one_file_only_and_counts_files(pair):
    rec = Recorder()
    fast = LinkMethod("fast", rec.unsupported("fast", "too many links", errno.EMLINK, only={"f2", "f4"}))
    slow = LinkMethod("slow", rec.writer("slow"))
    linker = Linker(methods=(fast, slow))
    used = [_link(linker, (fast, slow), pair, f"f{i}").name for i in range(6)]
    assert used == ["fast", "fast", "slow", "fast", "slow", "fast"]
    assert len(linker.fallbacks) == 1
    assert linker.fallbacks[0].files == 2
    assert linker.fallbacks[0].reason == "too many links"


def test_cross_device_skips_every_same_filesystem_method_with_one_fallback(pair):
    rec = Recorder()
    clone = LinkMethod("clone", rec.unsupported("clone", "FICLONE failed: cross-device", errno.EXDEV),
                       counts_as="reflinked", same_filesystem=True)
    link = LinkMethod("link", rec.writer("link"), counts_as="hardlinked", same_filesystem=True)
    plain = LinkMethod("plain", rec.writer("plain"))
    linker = Linker(methods=(clone, link, plain))
    used = [_link(linker, (clone, link, plain), pair, f"f{i}").name for i in range(3)]
    assert used == ["plain"] * 3
    assert rec.count("link") == 0, "after EXDEV no same-filesystem method may be tried"
    assert [(f.method, f.to, f.errno) for f in linker.fallbacks] == [("clone", "plain", errno.EXDEV)]


def test_strict_mode_names_method_path_and_what_it_would_fall_back_to(pair):
    rec = Recorder()
    fast = LinkMethod("fast", rec.unsupported("fast", "FASTCLONE failed: nope"))
    slow = LinkMethod("slow", rec.writer("slow"))
    linker = Linker(strict=True, methods=(fast, slow))
    with pytest.raises(StrictModeError) as caught:
        _link(linker, (fast, slow), pair, "pkg.py")
    text = str(caught.value)
    assert "fast" in text and "FASTCLONE failed: nope" in text
    assert str(pair[1] / "pkg.py") in text
    assert "falling back to slow" in text
    assert not (pair[1] / "pkg.py").exists()


def test_full_disk_becomes_one_materialize_error_naming_the_path(pair):
    rec = Recorder()
    full = LinkMethod("full", rec.failing("full", OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(MaterializeError) as caught:
        _link(Linker(methods=(full,)), (full,), pair, "big.so")
    message = caught.value.message
    assert str(pair[1] / "big.so") in message
    assert "full" in message
    assert message.count(". ") == 0 and message.endswith("."), message
    assert "Traceback" not in str(caught.value)


def test_vanished_store_object_is_reported_as_such(pair):
    objects, env, _ = pair
    missing = str(objects / "gone")
    linker = Linker(methods=(COPY,))
    with pytest.raises(MaterializeError) as caught:
        linker.link((COPY,), (str(objects), str(env)), missing, str(env / "x.py"), None, 0o444, None)
    assert "vanished" in caught.value.message
    assert missing in caught.value.message and str(env / "x.py") in caught.value.message


def test_enoent_outside_the_store_is_not_called_vanished(pair):
    objects, env, source = pair
    linker = Linker(methods=(COPY,))
    target = env / "no-such-dir" / "x.py"
    with pytest.raises(MaterializeError) as caught:
        linker.link((COPY,), (str(objects), str(env)), str(source), str(target), None, 0o444, None)
    assert "vanished" not in caught.value.message


def test_no_method_left_raises_a_clear_error(pair):
    rec = Recorder()
    only = LinkMethod("only", rec.unsupported("only", "ONLY failed: refused"))
    linker = Linker(methods=(only,))
    with pytest.raises(MaterializeError) as caught:
        _link(linker, (only,), pair, "a.py")
    assert "no link method could write" in caught.value.message
    assert str(pair[1] / "a.py") in caught.value.message and "ONLY failed: refused" in caught.value.message
    with pytest.raises(MaterializeError, match="no link method could write"):
        _link(linker, (only,), pair, "b.py")
    assert rec.count("only") == 1


def test_copy_writes_bytes_mode_and_mtime(tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"x" * (3 << 20) + b"tail")  # more than one block
    target = tmp_path / "dst"
    copy(str(source), str(target), None, 0o555, FIXED_MTIME)
    assert target.read_bytes() == source.read_bytes()
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o555
    assert int(st.st_mtime) == FIXED_MTIME
    assert st.st_ino != source.stat().st_ino


def test_copy_sets_the_mtime_by_name_where_descriptors_cannot_take_one(tmp_path, monkeypatch):
    # Windows: os.utime refuses a descriptor (utime not in os.supports_fd), played here.
    import holoclone_venv.materialize.linking as linking

    real_utime = os.utime
    by_name = []

    def windows_utime(path, *args, **kwargs):
        if isinstance(path, int):
            raise NotImplementedError("utime: fd unavailable on this platform")
        by_name.append(os.fspath(path))
        return real_utime(path, *args, **kwargs)

    monkeypatch.setattr(linking, "_UTIME_FD", False)
    monkeypatch.setattr(os, "utime", windows_utime)
    source = tmp_path / "src"
    source.write_bytes(b"data")
    copy(str(source), str(tmp_path / "dst"), None, 0o644, FIXED_MTIME)
    monkeypatch.undo()
    assert by_name == [str(tmp_path / "dst")]
    assert int((tmp_path / "dst").stat().st_mtime) == FIXED_MTIME and (tmp_path / "dst").read_bytes() == b"data"


def test_copy_relative_to_a_directory_descriptor(tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"data")
    env = tmp_path / "env"
    env.mkdir()
    fd = os.open(env, os.O_RDONLY)
    try:
        copy(str(source), "rel.txt", fd, 0o444, None)
    finally:
        os.close(fd)
    assert (env / "rel.txt").read_bytes() == b"data"
    assert not (tmp_path / "rel.txt").exists()


def test_copy_never_overwrites_an_existing_target(tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"new")
    target = tmp_path / "dst"
    target.write_bytes(b"user data")
    with pytest.raises(FileExistsError):
        copy(str(source), str(target), None, 0o444, None)
    assert target.read_bytes() == b"user data"


def test_failed_copy_leaves_no_target(tmp_path):
    source = tmp_path / "a-directory"  # opens, but reading it fails after the target was created
    source.mkdir()
    target = tmp_path / "dst"
    with pytest.raises(OSError):
        copy(str(source), str(target), None, 0o444, None)
    assert not target.exists()


def test_hardlink_shares_the_inode_and_never_overwrites(tmp_path):
    source = tmp_path / "obj"
    source.write_bytes(b"shared")
    os.chmod(source, 0o444)
    target = tmp_path / "env-file"
    hardlink(str(source), str(target), None, 0o444, FIXED_MTIME)
    assert os.path.samefile(source, target)
    other = tmp_path / "existing"
    other.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        hardlink(str(source), str(other), None, 0o444, None)
    assert other.read_bytes() == b"mine"


def test_linker_with_builtin_hardlink_then_copy_on_real_files(pair):
    objects, env, source = pair
    linker = Linker(methods=(HARDLINK, COPY))
    used = linker.link((HARDLINK, COPY), (str(objects), str(env)), str(source), str(env / "a"), None, 0o444, None)
    assert used is HARDLINK and used.counts_as == "hardlinked"
    assert os.path.samefile(source, env / "a")
    assert linker.fallbacks == []


def test_linker_existing_target_is_an_error_not_a_fallback(pair):
    objects, env, source = pair
    (env / "a").write_bytes(b"keep")
    linker = Linker(methods=(HARDLINK, COPY))
    with pytest.raises(MaterializeError):
        linker.link((HARDLINK, COPY), (str(objects), str(env)), str(source), str(env / "a"), None, 0o444, None)
    assert (env / "a").read_bytes() == b"keep"
    assert linker.fallbacks == []


def test_saturated_source_is_reseeded_once_and_the_same_method_retried(pair):
    rec = Recorder()
    saturated = {"yes": True}
    reseeded = []

    def clone(source, target, dir_fd, mode, mtime):
        rec.calls.append(("clone", os.path.basename(target)))
        if saturated["yes"]:
            raise Unsupported("the source region is already shared too many times", errno.EMLINK)
        rec.writer("clone-write")(source, target, dir_fd, mode, mtime)

    def reseed(source):
        reseeded.append(source)
        saturated["yes"] = False
        return True

    chain = (LinkMethod("reflink", clone, counts_as="reflinked"), LinkMethod("copy", rec.writer("copy")))
    linker = Linker(methods=chain, reseed=reseed)
    assert _link(linker, chain, pair, "a").name == "reflink"
    assert reseeded == [str(pair[2])] and rec.count("clone") == 2 and rec.count("copy") == 0
    assert linker.fallbacks == []


def test_saturated_source_that_cannot_be_reseeded_falls_back_for_that_file(pair):
    rec = Recorder()
    chain = (LinkMethod("reflink", rec.unsupported("reflink", "saturated", errno.EMLINK), counts_as="reflinked"),
             LinkMethod("copy", rec.writer("copy")))
    linker = Linker(methods=chain, reseed=lambda source: False)
    assert _link(linker, chain, pair, "a").name == "copy"
    assert rec.count("reflink") == 1 and (pair[1] / "a").read_bytes() == b"content"


def test_what_a_forked_worker_learned_is_merged_as_if_learned_here(pair):
    """A worker's Linker (apart) learns alone; merging gives one fallback per cause, counting every file."""
    rec = Recorder()
    fast = LinkMethod("fast", rec.unsupported("fast", "FASTCLONE failed: not here"), counts_as="reflinked")
    flaky = LinkMethod("flaky", rec.unsupported("flaky", "too many links", errno.EMLINK, only={"w1", "w2"}))
    slow = LinkMethod("slow", rec.writer("slow"))
    chain = (fast, flaky, slow)
    here = Linker(methods=chain)
    assert _link(here, chain, pair, "h0").name == "flaky"
    worker = here.apart()
    assert worker.fallbacks == [] and worker.settled(chain, (str(pair[0]), str(pair[1]))).name == "flaky"
    assert [_link(worker, chain, pair, name).name for name in ("w0", "w1")] == ["flaky", "slow"]
    here.merge(worker.learned())
    assert [(f.method, f.to, f.files) for f in here.fallbacks] == [("fast", "flaky", 1), ("flaky", "slow", 1)]
    # fast stays disabled, flaky (which works for other files) does not: the merged Linker goes on as before.
    assert [_link(here, chain, pair, name).name for name in ("h1", "w1x")] == ["flaky", "flaky"]
    assert rec.count("fast") == 1
    other = here.apart()
    _link(other, chain, pair, "w2")
    here.merge(other.learned())
    assert [(f.method, f.files) for f in here.fallbacks] == [("fast", 1), ("flaky", 2)]
