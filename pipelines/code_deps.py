"""What each stage's code is: the project files its flow imports, directly or through others.

One table serves both places that must know it. The dvc.yaml files (`pipelines.layout`) list these
files as each stage's code deps, so DVC reruns a stage exactly when one of them changes;
`code_version(stage)` hashes the same files into the key of the stage's resumable outputs, so a
rerun never resumes outputs made by other code. The table is derived from the imports (every
`import` and `from ... import` in the files, module level or not) and the templates of the
imported modules (`templates/<module>.*` beside a module's file, e.g.
lawm/evaluation/templates/report.md.j2), never kept by hand:

    python -m pipelines.code_deps           # rewrite the dvc.yaml files' code deps from the imports
    python -m pipelines.code_deps --check   # exit 1 if one disagrees (a test runs this)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
from functools import cache
from pathlib import Path

from pipelines.layout import PIPELINE_FILES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lawm", "pipelines")


def module_path(module: str) -> Path | None:
    """The file of a project module (`lawm.video` -> lawm/video.py, a package -> its __init__.py)."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def imports(module: str) -> frozenset[str]:
    """Project modules that `module`'s file imports, with the packages each one runs on import."""
    path = module_path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            named.add(base)
            named.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    found = set()
    for name in named:
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))  # importing a.b.c runs a, a.b
    return frozenset(m for m in found if module_path(m) is not None)


def templates(path: Path) -> list[Path]:
    """The templates a module renders: `templates/<its name>.*` beside its file."""
    return sorted((path.parent / "templates").glob(f"{path.stem}.*"))


def closure(module: str) -> list[Path]:
    """Every project file that importing `module` loads, and their templates, sorted."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imports(current))
    files = {module_path(m) for m in seen}
    return sorted(files.union(*(templates(f) for f in files)))


def stage_files(module: str) -> list[str]:
    """The code deps of the stage whose command is `python -m <module>`: POSIX paths from the root."""
    return [p.relative_to(ROOT).as_posix() for p in closure(module)]


def code_version(module: str) -> str:
    """A short hash of the stage's code deps (paths and bytes)."""
    h = hashlib.sha256()
    for rel in stage_files(module):
        h.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def is_code(dep: str) -> bool:
    return dep.split("/")[0] in PACKAGES


def stage_module(cmd: str) -> str | None:
    """`python -m pipelines.x ...` -> `pipelines.x`."""
    words = cmd.split()
    return words[words.index("-m") + 1] if "-m" in words else None


def sync_dvc_yaml(path: Path, write: bool = True) -> list[str]:
    """Make every stage's code deps in the dvc.yaml file `path` the closure of its module (other deps
    kept, in place); returns the names of the stages that disagreed. Comments and layout survive."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(path.read_text())
    stale = []
    for name, stage in doc["stages"].items():
        module = stage_module(stage["cmd"])
        if module is None or module_path(module) is None:
            continue
        deps = stage.setdefault("deps", [])
        wanted = [d for d in deps if not is_code(str(d))] + stage_files(module)
        if [str(d) for d in deps] != wanted:
            stale.append(name)
            deps[:] = wanted
    if write and stale:
        with open(path, "w") as f:
            yaml.dump(doc, f)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a dvc.yaml is out of date")
    args = parser.parse_args(argv)
    failed = False
    for file in PIPELINE_FILES:
        stale = sync_dvc_yaml(ROOT / file, write=not args.check)
        if stale and args.check:
            print(f"{file}: the code deps of {', '.join(stale)} differ from their imports; "
                  "run `python -m pipelines.code_deps`", file=sys.stderr)
            failed = True
        else:
            print(f"{file}: {'updated ' + ', '.join(stale) if stale else 'code deps match the imports'}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
