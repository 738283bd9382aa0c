"""The licence report of the image's dependencies, docs/licences.md, made from
requirements/runtime.lock and the installed packages' metadata (`make lock` writes
it; aiaas/tests/test_supply_chain.py fails when it is stale or names a GPL/AGPL
package).

The development environment holds every runtime package at the runtime lock's
version (requirements/dev.txt includes base.txt and s3.txt), so the report needs
no network: a package installed at another version is an error, not a guess.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)
CLASSIFIER_PREFIX = "License :: "
# The most of a License field shown (a first line of a licence's text can be long).
MAX_LICENCE_FIELD_CHARACTERS = 80
HEADER = """# Licences of the runtime dependencies

Every package in `requirements/runtime.lock` (what the image installs), with the
licence its metadata declares. Generated; do not edit. Regenerate with `make lock`,
or alone with `.venv/bin/python requirements/licences.py --write docs/licences.md`.
`aiaas/tests/test_supply_chain.py` fails when this page is stale and when a runtime
dependency is GPL or AGPL (LGPL, as psycopg's, is allowed: it is imported, not modified).

| package | version | licence |
| --- | --- | --- |
"""


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_pins() -> dict[str, str]:
    return {normalised(name): version for name, version in PIN.findall(RUNTIME_LOCK.read_text())}


def licence_of(distribution: metadata.Distribution) -> str:
    """The SPDX expression (PEP 639) when declared, else the licence classifiers, else
    the License field's first line (some packages put the licence's whole text there)."""
    fields = distribution.metadata
    expression = fields.get_all("License-Expression") or []
    if expression:
        return str(expression[0])
    classifiers = [
        value.removeprefix(CLASSIFIER_PREFIX).removeprefix("OSI Approved :: ")
        for value in fields.get_all("Classifier") or []
        if value.startswith(CLASSIFIER_PREFIX)
    ]
    if classifiers:
        return "; ".join(classifiers)
    lines = "\n".join(fields.get_all("License") or []).strip().splitlines()
    return lines[0].strip()[:MAX_LICENCE_FIELD_CHARACTERS] if lines else "not declared"


def is_gpl(licence: str) -> bool:
    """GPL or AGPL in any spelling, with no other licence to choose (`MPL-1.1 OR
    GPL-2.0-only` is not); the LGPL (Lesser/Library) is not."""
    return all(gpl_only(alternative) for alternative in licence.split(" OR "))


def gpl_only(licence: str) -> bool:
    text = licence.lower()
    for lesser in ("lgpl", "lesser general public", "library general public"):
        text = text.replace(lesser, "")
    return "gpl" in text or "general public license" in text or "affero" in text


def rows() -> list[tuple[str, str, str]]:
    found = []
    for name, version in sorted(runtime_pins().items()):
        distribution = metadata.distribution(name)
        if distribution.version != version:
            raise SystemExit(f"{name} is installed at {distribution.version}, the lock pins {version}")
        found.append((name, version, licence_of(distribution)))
    return found


def report() -> str:
    table = "".join(f"| {name} | {version} | {licence} |\n" for name, version, licence in rows())
    return HEADER + table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="write the report here instead of printing it")
    arguments = parser.parse_args()
    if arguments.write is None:
        sys.stdout.write(report())
    else:
        arguments.write.write_text(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
