"""Mutation testing of the core: every mutant of tests/mutants/mutants.py must be killed.

    python -m tests.mutants.run            # all mutants, 2 at a time; the table; exit 1 if any survives
    python -m tests.mutants.run --check    # only check that every snippet is still found (seconds)
    python -m tests.mutants.run -k seq     # the mutants whose name contains "seq"
    python -m tests.mutants.run --markdown # the table as Markdown (docs/guarantees.md)

Each mutant is applied to its own COPY of the tree (the files git tracks or would track, copied
from the working tree into a temporary directory; the working tree is never touched), then the
tests it names — all cited by docs/guarantees.md — run there with ``pytest -x``; servers the
tests start run the copy's code (``python -m gateway`` from the copy). A mutant is killed when a
test fails; it survives when they all pass. Anything else (a timeout, a collection error) is
neither, and fails the run too.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from tests.mutants.mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
GUARANTEES = ROOT / "docs" / "guarantees.md"
CITED = re.compile(r"tests/[\w/]+\.py::\w+")
TIMEOUT = 240.0  # per mutant; a killed mutant takes seconds


class Outcome(NamedTuple):
    mutant: Mutant
    verdict: str  # killed, SURVIVED, ERROR
    test: str  # the test that failed (killed), or what went wrong
    reason: str
    seconds: float


def problems() -> list[str]:
    """What is wrong with the mutant set against the current tree: a snippet not found exactly
    once, a test not cited by docs/guarantees.md, a duplicate name."""
    cited = set(CITED.findall(GUARANTEES.read_text()))
    out = []
    names = [m.name for m in MUTANTS]
    out += [f"duplicate mutant name {n!r}" for n in {n for n in names if names.count(n) > 1}]
    for m in MUTANTS:
        path = ROOT / m.file
        if not path.is_file():
            out.append(f"{m.name}: {m.file} does not exist (moved? update tests/mutants/mutants.py)")
            continue
        n = path.read_text().count(m.original)
        if n != 1:
            out.append(f"{m.name}: its snippet occurs {n} times in {m.file}, not once — the code "
                       f"moved or changed: update the snippet in tests/mutants/mutants.py "
                       f"(the same fault, at the code's new place). Snippet:\n{m.original}")
        out += [f"{m.name}: {t} is not cited by docs/guarantees.md" for t in m.tests if t not in cited]
        if not m.tests:
            out.append(f"{m.name}: no tests")
    return out


SKIP_DIRS = {".git", ".venv", "dist", "data", "node_modules", "__pycache__", ".pyi-work",
             ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def _tree_files() -> list[str]:
    """The files of the tree: what git tracks or would track (from the working tree, so edits
    not yet committed are in the copy); outside a git checkout, everything but build and
    cache directories."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode()
        return [f for f in listed.split("\0") if f and (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]


def _copy_tree(dest: Path, files: list[str]) -> None:
    """Copy ``files`` with their times, and the bytecode Python and pytest cached for them
    (``__pycache__``): each copy's test run and servers then import the unchanged modules from
    it instead of compiling every module again (the copy runs with PYTHONDONTWRITEBYTECODE,
    so each process would). A cached file is only used while its source's time and size match
    what it records: the mutated file, rewritten with a new time, is compiled from its source
    (and its cached bytecode is removed from the copy anyway: run_one)."""
    caches: set[Path] = set()
    for f in files:
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, target)
        if f.endswith(".py"):
            caches.add(Path(f).parent / "__pycache__")
    for cache in caches:
        if (ROOT / cache).is_dir():
            shutil.copytree(ROOT / cache, dest / cache, dirs_exist_ok=True)


def run_one(m: Mutant, files: list[str], keep: bool = False) -> Outcome:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"converger-mutant-{m.name}-"))
    try:
        _copy_tree(work, files)
        target = work / m.file
        text = target.read_text()
        assert text.count(m.original) == 1, f"{m.name}: snippet not found once in the copy"
        target.write_text(text.replace(m.original, m.replacement))
        for cached in (target.parent / "__pycache__").glob(target.stem + ".*"):
            cached.unlink()  # the original's bytecode: never imported instead of the mutant
        env = {**os.environ, "PYTHONPATH": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("CONVERGER_TEST_BINARY", None)  # the copy's source is what runs, not a binary
        # Hypothesis's plugin imports hypothesis (~0.5 s per run); no cited test uses it.
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider",
               "-p", "no:hypothesispytest", "--timeout", "120", *m.tests]
        # A session of its own: on a timeout the whole group goes, servers the tests started too.
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Outcome(m, "ERROR", f"timed out after {TIMEOUT:.0f}s", "",
                           time.monotonic() - started)
        elapsed = time.monotonic() - started
        if proc.returncode == 0:
            return Outcome(m, "SURVIVED", "all passed", "", elapsed)
        failed = re.search(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
        if proc.returncode == 1 and failed:
            reason = next((line[1:].strip() for line in out.splitlines()
                           if line.startswith("E ") and line[1:].strip()), "")
            return Outcome(m, "killed", failed.group(1), reason[:160], elapsed)
        return Outcome(m, "ERROR", f"pytest exited {proc.returncode}", out[-2000:], elapsed)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def table(outcomes: list[Outcome], markdown: bool) -> str:
    if markdown:  # the table of docs/guarantees.md
        lines = ["| mutant | the promise it breaks | file | verdict | killed by | time |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| `{o.mutant.name}` | {o.mutant.promise} | `{o.mutant.file}` | {o.verdict} | "
                  f"`{o.test}` | {o.seconds:.0f} s |" for o in outcomes]
        return "\n".join(lines)
    head = ("mutant", "file", "verdict", "killed by", "time")
    rows = [head, *((o.mutant.name, o.mutant.file, o.verdict, o.test, f"{o.seconds:.0f}s")
                    for o in outcomes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the snippets and tests")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutants run at once (2)")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies")
    args = parser.parse_args(argv)

    wrong = problems()
    if wrong:
        print("mutants: the mutant set does not match the tree:", file=sys.stderr)
        for w in wrong:
            print("  - " + w, file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if args.k in m.name]
    if args.check:
        print(f"mutants: {len(MUTANTS)} snippets found once each; their tests are cited")
        return 0
    files = _tree_files()
    started = time.monotonic()
    print(f"mutants: {len(chosen)} mutants, {args.jobs} at a time, each on a copy of "
          f"{len(files)} files", flush=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_one, m, files, args.keep): m for m in chosen}
        for fut in concurrent.futures.as_completed(futures):
            o = fut.result()
            print(f"  {o.verdict:8} {o.mutant.name} ({o.seconds:.0f}s) {o.test}"
                  + (f"\n           {o.reason}" if o.verdict == "killed" else ""), flush=True)
    outcomes = sorted((f.result() for f in futures), key=lambda o: chosen.index(o.mutant))
    print()
    print(table(outcomes, args.markdown))
    bad = [o for o in outcomes if o.verdict != "killed"]
    print(f"\nmutants: {len(outcomes) - len(bad)} of {len(outcomes)} killed in "
          f"{time.monotonic() - started:.0f}s")
    for o in bad:
        print(f"\n{o.verdict}: {o.mutant.name} ({o.mutant.promise})\n{o.reason}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
