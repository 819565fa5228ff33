"""A requirement pip could never parse is refused while virtualenv parses its options, before anything is made."""

from __future__ import annotations

import pytest

from holoclone_venv.seeding.requirements import ResolveError, read_requirements


@pytest.mark.parametrize("spec", ["numpy>=", "numpy >= 1 2", "==1.0", "foo bar"])
def test_a_spec_packaging_cannot_parse_is_one_sentence_naming_it(spec):
    with pytest.raises(ResolveError) as refused:
        read_requirements([], [spec])
    message = str(refused.value)
    assert message.startswith(f"{spec!r} in --holoclone-package is not a valid requirement (")
    assert "\n" not in message and "nothing was created" in message


def test_a_bad_line_in_a_requirements_file_names_the_file(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\nnumpy>=\n")
    with pytest.raises(ResolveError, match=f"'numpy>=' in {requirements} is not a valid requirement"):
        read_requirements([str(requirements)], [])


@pytest.mark.parametrize("line", ["six", "numpy[extra]>=1; python_version<'3.10'", "six==1.17.0 --hash=sha256:00",
                                  "pkg @ https://example.org/pkg-1.0-py3-none-any.whl", "${NAME}>=1", "--index-url x"])
def test_what_pip_accepts_passes(tmp_path, line):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(line + "\n")
    read_requirements([str(requirements)], [])
