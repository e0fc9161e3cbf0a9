"""Score of the last ``mutmut run``: killed, survivors, and the equivalent mutants of equivalent.md.

Run from the project root after ``mutmut run`` (``make mutation`` does both). Prints::

    mutation score: K killed of N mutants (P%)
    adjusted score: K killed of N - E mutants (P%), E equivalent mutants listed in mutation/equivalent.md

then every mutant that was not killed, with its file, line and mutated code. Counting, as
mutmut's own score does: a mutant whose tests time out (mutmut's ``timeout``) counts as killed;
``survived``, ``no tests``, ``suspicious``, ``segfault`` and ``not checked`` do not.

An entry of ``mutation/equivalent.md`` is a table row whose first cell is a mutant name in
backticks and whose third cell is the mutated line in backticks. It excludes its mutant from the
adjusted denominator only while that mutant still survives and its mutated line is still the
recorded one (a changed function renumbers its mutants), otherwise it is reported as stale.

Exit status: 0 when the adjusted score reaches ``--min`` (default 90), else 1.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
EQUIVALENT = ROOT / "mutation" / "equivalent.md"
KILLED = {"killed", "timeout"}


@dataclass
class Mutant:
    name: str
    path: str
    status: str
    line: int = 0
    removed: str = ""
    added: str = ""


def _status(exit_code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


def load_mutants() -> list[Mutant]:
    mutants: list[Mutant] = []
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = str(meta.relative_to(MUTANTS))[: -len(".meta")]
        data = json.loads(meta.read_text("utf-8"))
        for name, exit_code in data.get("exit_code_by_key", {}).items():
            mutants.append(Mutant(name=name, path=source, status=_status(exit_code)))
    return mutants


def _function_span(path: str, mutant_name: str) -> tuple[int, int]:
    """First and last line of the original function or method a mutant was made from."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, class_name = orig_function_and_class_names_from_key(mutant_name)
    tree = ast.parse((ROOT / path).read_text("utf-8"))
    scopes = [tree]
    if class_name:
        scopes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name]
    for scope in scopes:
        for node in scope.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
                return node.lineno, node.end_lineno or node.lineno
    return 0, 0


def describe(mutant: Mutant) -> None:
    """Fill in the source line and the removed and added code of ``mutant``."""
    import os

    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        diff = get_diff_for_mutant(mutant.name, path=mutant.path).splitlines()
    except Exception as exc:  # a missing or out-of-date mutants/ file
        mutant.added = f"(no diff: {exc})"
        return
    finally:
        os.chdir(cwd)
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    mutant.removed = " / ".join(line.strip() for line in removed)
    mutant.added = " / ".join(line.strip() for line in added) or "(line removed)"
    start, end = _function_span(mutant.path, mutant.name)
    if removed and start:
        lines = (ROOT / mutant.path).read_text("utf-8").splitlines()[start - 1 : end]
        match = difflib.get_close_matches(removed[0], lines, n=1, cutoff=0.0)
        if match:
            mutant.line = start + lines.index(match[0])


_ROW = re.compile(r"^\|\s*`(?P<name>[^`]+)`\s*\|[^|]*\|\s*`(?P<added>(?:[^`]|``)*)`\s*\|")


def load_equivalent() -> dict[str, str]:
    """``{mutant name: mutated line}`` from the table rows of equivalent.md."""
    if not EQUIVALENT.exists():
        return {}
    entries: dict[str, str] = {}
    for line in EQUIVALENT.read_text("utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            entries[match["name"]] = match["added"].replace("\\|", "|").strip()
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=90.0, help="lowest acceptable adjusted score, in %%")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    mutants = load_mutants()
    if not mutants:
        print("mutation score: no mutants found; run `make mutation` (mutmut run) first")
        return 1
    total = len(mutants)
    killed = sum(mutant.status in KILLED for mutant in mutants)
    timeouts = sum(mutant.status == "timeout" for mutant in mutants)
    not_killed = [mutant for mutant in mutants if mutant.status not in KILLED]
    for mutant in not_killed:
        describe(mutant)

    recorded = load_equivalent()
    equivalent = [m for m in not_killed if m.name in recorded and recorded[m.name] == m.added]
    stale = sorted(set(recorded) - {m.name for m in equivalent})
    survivors = [m for m in not_killed if m not in equivalent]

    print(f"mutation score: {killed} killed of {total} mutants ({100 * killed / total:.1f}%)")
    adjusted_total = total - len(equivalent)
    adjusted = 100 * killed / adjusted_total if adjusted_total else 100.0
    print(
        f"adjusted score: {killed} killed of {adjusted_total} mutants ({adjusted:.1f}%), "
        f"{len(equivalent)} equivalent mutants listed in mutation/equivalent.md"
    )
    if timeouts:
        print(f"  ({timeouts} of the killed mutants were killed by a timeout, which mutmut counts as killed)")
    print(f"survivors ({len(survivors)}):")
    for mutant in sorted(survivors, key=lambda m: (m.path, m.line, m.name)):
        print(f"  {mutant.path}:{mutant.line}  {mutant.status:<10} {mutant.name}")
        print(f"      - {mutant.removed}")
        print(f"      + {mutant.added}")
    if stale:
        print(
            f"stale entries in mutation/equivalent.md (killed, gone or changed; not excluded): {len(stale)}"
        )
        for name in stale:
            print(f"  {name}")
    return 0 if adjusted >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
