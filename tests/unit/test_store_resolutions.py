"""The resolution document has one parser (store/resolutions.py): the seeding's cache and a remote pull
accept and refuse the same documents."""

from __future__ import annotations

import pytest

from holoclone_venv.errors import RemoteError
from holoclone_venv.remote import layout
from holoclone_venv.store.resolutions import (
    UnsafeWheel,
    resolution_document,
    resolution_serial,
    resolution_wheels,
)

DIGEST = "ab" * 32


def test_a_new_document_reads_back_with_its_wheels_and_a_serial():
    document = resolution_document(["requirements.txt"], ["numpy"], [("numpy-2.0-cp311-x.whl", DIGEST)])
    assert resolution_wheels(document) == [("numpy-2.0-cp311-x.whl", DIGEST)]
    assert resolution_serial(document) > 0 and resolution_serial({"serial": -1}) == 0
    assert layout.resolution_wheels(document, "here") == resolution_wheels(document)


@pytest.mark.parametrize("name", ["../evil.whl", "a/b.whl", "a\\b.whl", ".hidden.whl", "numpy.tar.gz"])
def test_an_unsafe_wheel_name_is_refused_by_both_readers(name, store):
    document = resolution_document([], ["x"], [(name, DIGEST)])
    with pytest.raises(UnsafeWheel):
        resolution_wheels(document)
    with pytest.raises(RemoteError, match="names an unsafe wheel"):
        layout.resolution_wheels(document, "from the remote")
    # The seeding's cache resolves again rather than use it.
    from holoclone_venv.seeding.dependencies import _cached

    store.write_resolution("k" * 64, document)
    assert _cached(store, "k" * 64) is None


@pytest.mark.parametrize("document", [None, [], {"format": 2, "wheels": []}, {"format": 1},
                                      {"format": 1, "wheels": [["only-a-name.whl"]]},
                                      {"format": 1, "wheels": [["a.whl", "not-a-digest"]]}])
def test_what_is_not_a_resolution_is_malformed(document):
    with pytest.raises(ValueError):
        resolution_wheels(document)
    with pytest.raises(RemoteError, match="is malformed|names an unsafe wheel"):
        layout.resolution_wheels(document, "from the remote")
