"""The main job: a real virtualenv seeded by holoclone works like one from the default seeder."""

from __future__ import annotations


from helpers import regular_files, run_in, summary_line, virtualenv

from holoclone_venv.platforms.linux import shares_extents


def test_env_on_xfs_is_reflinked_and_pip_works(xfs, unique):
    store = xfs / f"store-{unique}"
    env = xfs / f"env-{unique}"
    result = virtualenv(env, store=store)
    assert "seeded pip" in summary_line(result)
    out = run_in(env, "pip", "--version").stdout
    assert str(env) in out
    site = next((env / "lib").glob("python*/site-packages"))
    files = [p for p in regular_files(site) if p.stat().st_size > 0 and p.name not in ("RECORD", "INSTALLER")]
    assert len(files) > 500
    not_shared = [p for p in files if not shares_extents(str(p))]
    assert not_shared == []
