"""A pre-commit hook: fail when a Python file indents with tabs."""

import sys


def main(paths: list[str]) -> int:
    bad = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.startswith("\t"):
                    bad.append(f"{path}:{number}: indented with a tab")
    print("\n".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
