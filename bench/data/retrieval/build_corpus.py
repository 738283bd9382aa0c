"""Writes corpus.jsonl: one document per documented public function or class of
some standard library modules (its signature and docstring), as this Python
(3.11) carries them. Run once; the output is committed, so the bench does not
depend on the running Python's docstrings.

    .venv/bin/python bench/data/retrieval/build_corpus.py
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

MODULES = (
    "os",
    "os.path",
    "shutil",
    "json",
    "csv",
    "re",
    "datetime",
    "time",
    "calendar",
    "collections",
    "itertools",
    "functools",
    "math",
    "statistics",
    "random",
    "string",
    "textwrap",
    "pathlib",
    "tempfile",
    "glob",
    "fnmatch",
    "zipfile",
    "tarfile",
    "gzip",
    "hashlib",
    "hmac",
    "secrets",
    "base64",
    "urllib.parse",
    "http.client",
    "socket",
    "subprocess",
    "threading",
    "queue",
    "heapq",
    "bisect",
    "copy",
    "pickle",
    "sqlite3",
    "logging",
    "argparse",
    "difflib",
    "decimal",
    "fractions",
    "uuid",
    "enum",
    "dataclasses",
    "contextlib",
    "operator",
    "io",
    "struct",
    "html",
    "ipaddress",
)
MIN_CHARS = 100
MAX_CHARS = 3000
OUTPUT = Path(__file__).with_name("corpus.jsonl")


def documented(module_name: str) -> list[dict[str, str]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [name for name in dir(module) if not name.startswith("_")]
    documents = []
    for name in sorted(names):
        obj = getattr(module, name, None)
        if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        if not MIN_CHARS <= len(doc) <= MAX_CHARS or doc.startswith("Initialize self"):
            continue
        try:
            signature = f"{name}{inspect.signature(obj)}"
        except (TypeError, ValueError):
            signature = name
        documents.append(
            {"id": f"{module_name}.{name}", "title": f"{module_name}.{name}", "text": f"{signature}\n\n{doc}"}
        )
    return documents


def main() -> None:
    seen: set[str] = set()
    with OUTPUT.open("w") as output:
        for module_name in MODULES:
            for document in documented(module_name):
                if document["text"] in seen:
                    continue
                seen.add(document["text"])
                output.write(json.dumps(document) + "\n")


if __name__ == "__main__":
    main()
