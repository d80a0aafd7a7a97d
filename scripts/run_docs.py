#!/usr/bin/env python3
"""Run the command blocks of the project's Markdown pages as a reader would, in scratch copies.

Usage::

    python scripts/run_docs.py                    # every page (what .ci/run does)
    python scripts/run_docs.py docs/training.md   # README.md, then only this page
    python scripts/run_docs.py --list             # the plan: what runs, as what, what is skipped

It runs README.md's commands, including its ``pip install``: run it in a scratch virtual
environment (``.ci/run`` makes one), not in a development one.

**What runs.** The ```bash and ```python blocks of every Markdown file git tracks: README.md
first, then the others in path order. Plain ``` blocks (synopses with PLACEHOLDERS, sample
output) are not run. Each line of a bash block is one command (a trailing backslash continues
it; blank and comment lines are ignored), run by ``bash -euo pipefail -c``: nothing (``cd``, a
variable) carries over to the next line. A python block is one program, fed to ``python -I -``
(the installed package, as the bash commands use).

**Where.** README.md runs in a scratch copy of the tracked files (as they are in the working
tree), like a fresh clone. Every other page runs in its own copy of that folder as README.md's
commands left it: a page may use what README.md made (``model.h5``, ``random-net.h5``,
``data.h5``, ``trace.h5``, ...) and what its own earlier blocks made, never another page's
files. A folder next to the repository that a block names (``../shared/...``) is linked next to
the copies, so relative paths resolve as in a clone.

**Markers** (documented for writers in docs/architecture.md, "Commands in the docs"):

- ``COMMAND  # ci: skip REASON``: the command is not run (printed, with its reason);
- ``COMMAND  # ci: --opt VALUE --flag``: the command runs with these options instead: an option
  the command has gets the new value, one it lacks is appended;
- ``<!-- ci: skip REASON -->`` on the line above a block's opening fence: the block is not run;
- ``<!-- ci: needs PATH ... -->`` there: the block runs only where every PATH exists (relative to
  the clone's root, checked when the block is reached).

A block that names a path outside the repository (``../something``) needs it: where
``../shared/data/nmnist-1k`` is absent (CI, a user's machine), its blocks are skipped with a note.
README.md's first block is CI's contract: exactly two commands, no markers, run verbatim.

On the first failing command it prints the command, its exit status, its stderr and the end of
its stdout, keeps the scratch folder, and exits with status 1. The scratch folder is removed
after a successful run unless ``--keep`` or ``--scratch`` is given.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RUNNABLE = ("bash", "python")
FENCE = "```"
BLOCK_MARKER = re.compile(r"<!--\s*ci:(.*?)-->")
LINE_MARKER = re.compile(r"#\s*ci:(.*)$")
OUTSIDE_PATH = re.compile(r"(?<![\w./-])\.\./[\w.-]+(?:/[\w.-]+)*")
FIRST_PAGE = "README.md"
STDOUT_TAIL = 60


class MarkerError(ValueError):
    """A block or a ``ci:`` marker the runner cannot follow (a doc error, so the build fails)."""


@dataclass
class Command:
    """One command of a page: its text as written, and what the runner does with it."""

    page: str
    line: int           # 1-based line of the command in its page
    language: str       # "bash" or "python"
    written: str        # as written in the page
    run: str | None     # what runs (the options of a marker applied); None = skipped
    note: str = ""      # the marker, or why the command is skipped

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Block:
    """A ```bash or ```python block: its commands, and the paths it needs to run at all."""

    page: str
    line: int           # 1-based line of the opening fence
    language: str
    commands: list = field(default_factory=list)
    needs: tuple = ()   # paths relative to the clone's root that must exist
    skip: str = ""      # the reason of a <!-- ci: skip --> marker


# ---------------------------------------------------------------- reading pages

def parse_page(text: str, page: str) -> list:
    """The runnable blocks of a Markdown page, in order (:class:`Block`)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not lines[i].startswith(FENCE):
            if BLOCK_MARKER.fullmatch(lines[i].strip()) and not _opens_runnable(lines[i + 1:i + 2]):
                raise MarkerError(f"{page}:{i + 1}: a block marker belongs on the line right above "
                                  "a ```bash or ```python fence")
            i += 1
            continue
        language = lines[i][len(FENCE):].strip()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(FENCE)), None)
        if end is None:
            raise MarkerError(f"{page}:{i + 1}: a block that is never closed")
        if language in RUNNABLE:
            above = lines[i - 1].strip() if i > 0 else ""
            blocks.append(_block(page, i + 1, language, lines[i + 1:end], above))
        i = end + 1
    return blocks


def _opens_runnable(lines) -> bool:
    return bool(lines) and lines[0].startswith(FENCE) and lines[0][len(FENCE):].strip() in RUNNABLE


def _block(page, fence_line, language, body, above) -> Block:
    block = Block(page, fence_line, language)
    marker = BLOCK_MARKER.fullmatch(above)
    if marker:
        verb, _, rest = marker.group(1).strip().partition(" ")
        if verb == "skip" and rest.strip():
            block.skip = rest.strip()
        elif verb == "needs" and rest.strip():
            block.needs = tuple(shlex.split(rest))
        else:
            raise MarkerError(f"{page}:{fence_line - 1}: a block marker is '<!-- ci: skip REASON -->' "
                              f"or '<!-- ci: needs PATH ... -->', not '{above}'")
    if language == "python":
        code = "\n".join(body) + "\n"
        if re.search(r"#\s*ci:", code):
            raise MarkerError(f"{page}:{fence_line}: a python block takes a block marker "
                              "('<!-- ci: ... -->' above it), not '# ci:' lines")
        block.commands.append(Command(page, fence_line + 1, language, code, code))
    else:
        block.commands = [_bash_command(page, line, text) for line, text in _bash_lines(page, body, fence_line)]
    outside = sorted({p for c in block.commands for p in OUTSIDE_PATH.findall(_code(c))})
    block.needs = tuple(dict.fromkeys(block.needs + tuple(outside)))
    return block


def _code(command: Command) -> str:
    return command.written if command.language == "python" else split_comment(command.written)[0]


def _bash_lines(page, body, fence_line):
    """``(line number, command)`` per logical line: continuations joined, blank and comment
    lines dropped."""
    pending, start = [], None
    for offset, raw in enumerate(body, start=fence_line + 1):
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if not pending:
            start = offset
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        yield start, " ".join(part.strip() for part in pending)
        pending = []
    if pending:
        raise MarkerError(f"{page}:{start}: the block ends inside a continued line")


def _bash_command(page, line, text) -> Command:
    code, comment = split_comment(text)
    marker = LINE_MARKER.search(comment)
    if marker is None:
        return Command(page, line, "bash", text, text)
    spec = marker.group(1).strip()
    if spec.split(" ", 1)[0] == "skip":
        reason = spec[len("skip"):].strip()
        if not reason:
            raise MarkerError(f"{page}:{line}: '# ci: skip' needs a reason")
        return Command(page, line, "bash", text, None, reason)
    try:
        options = parse_options(spec)
    except MarkerError as e:
        raise MarkerError(f"{page}:{line}: {e}") from None
    return Command(page, line, "bash", text, apply_options(code, options), f"ci: {spec}")


def split_comment(line: str) -> tuple:
    """``(code, comment)``: the comment starts at the first ``#`` that begins a word outside
    quotes, as in bash (``comment`` is ``""`` when there is none)."""
    quote, i = None, 0
    while i < len(line):
        char = line[i]
        if char == "\\" and quote != "'":
            i += 2   # an escaped character
            continue
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:]
        i += 1
    return line.rstrip(), ""


# ---------------------------------------------------------------- the options of a marker

def parse_options(spec: str) -> list:
    """``[(option, value or None), ...]`` of a marker such as ``--epochs 1 --quick``."""
    tokens = shlex.split(spec)
    options, i = [], 0
    while i < len(tokens):
        option = tokens[i]
        if not option.startswith("--"):
            raise MarkerError(f"a 'ci:' marker is 'skip REASON' or options like '--epochs 1', not '{spec}'")
        value = tokens[i + 1] if i + 1 < len(tokens) and not tokens[i + 1].startswith("--") else None
        options.append((option, value))
        i += 2 if value is not None else 1
    if not options:
        raise MarkerError("an empty 'ci:' marker")
    return options


def apply_options(code: str, options) -> str:
    """``code`` with each option set: a value replaces the option's value where the command has
    the option (or follows a bare flag); a missing option is appended, with its value."""
    for option, value in options:
        found = re.search(rf"(?<!\S){re.escape(option)}(?=[\s=]|$)", code)
        if found is None:
            code = f"{code} {option}" + ("" if value is None else f" {shlex.quote(value)}")
        elif value is not None:
            rest = code[found.end():]
            old = re.match(r"(=|\s+)(?!-)\S+", rest)
            if old:
                code = code[:found.end()] + old.group(1) + shlex.quote(value) + rest[old.end():]
            else:
                code = code[:found.end()] + f" {shlex.quote(value)}" + rest
    return code


# ---------------------------------------------------------------- the pages of a repository

def tracked_files(repo: Path) -> list:
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], check=True,
                         capture_output=True, text=True).stdout
    return [name for name in out.split("\0") if name]


def page_order(names) -> list:
    """README.md first, then every other tracked Markdown file in path order."""
    pages = sorted(n for n in names if n.endswith(".md") and n != FIRST_PAGE)
    return ([FIRST_PAGE] if FIRST_PAGE in names else []) + pages


def check_first_block(blocks) -> None:
    """README.md opens with CI's two commands, to run verbatim."""
    first = blocks[0] if blocks else None
    if (first is None or first.language != "bash" or len(first.commands) != 2 or first.needs
            or first.skip or any(c.run != c.written for c in first.commands)):
        raise MarkerError(f"{FIRST_PAGE} must open with a ```bash block of exactly two commands "
                          "(install and run the main job; install and run the tests), without markers")


def plan(repo: Path, only=()) -> dict:
    """``{page: [Block, ...]}`` of the pages to run, README.md first (always: the other pages
    build on what it makes)."""
    names = tracked_files(repo)
    pages = page_order(names)
    if only:
        wanted = {os.path.normpath(p) for p in only}
        unknown = wanted - set(pages)
        if unknown:
            raise MarkerError(f"not a tracked Markdown page: {', '.join(sorted(unknown))}")
        pages = [p for p in pages if p == FIRST_PAGE or p in wanted]
    result = {page: parse_page((repo / page).read_text(encoding="utf-8"), page) for page in pages}
    if FIRST_PAGE in result:
        check_first_block(result[FIRST_PAGE])
    return result


# ---------------------------------------------------------------- running

def copy_tracked(repo: Path, names, dest: Path) -> None:
    for name in names:
        source = repo / name
        if not source.exists() and not source.is_symlink():
            continue   # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def link_outside(repo: Path, pages: dict, scratch: Path) -> None:
    """Link next to the copies each folder next to the repository that a block names."""
    for top in sorted({Path(p).parts[1] for blocks in pages.values() for b in blocks
                       for p in b.needs if p.startswith("../")}):
        outside = repo.parent / top
        if outside.exists() and not (scratch / top).exists():
            (scratch / top).symlink_to(outside.resolve())


def run_command(command: Command, cwd: Path, verbose: bool):
    """``(exit status, seconds, stdout, stderr)``; output is captured unless ``verbose``."""
    if command.language == "python":
        # -I: the installed pyasync-snn, as the bash commands use (whose compiled kernels it
        # reuses), not the copy's source tree (the same code, compiled again per copy)
        argv, stdin = [shutil.which("python") or sys.executable, "-I", "-"], command.run
    else:
        argv, stdin = ["bash", "-euo", "pipefail", "-c", command.run], ""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, input=stdin, text=True, capture_output=not verbose)
    return done.returncode, time.perf_counter() - start, done.stdout or "", done.stderr or ""


def shown(command: Command) -> str:
    if command.language == "python":
        return "python - <<'EOF'\n    " + command.run.rstrip().replace("\n", "\n    ") + "\nEOF"
    return command.run


def run_page(page, blocks, cwd: Path, verbose: bool, skipped: list):
    """Run one page's blocks in ``cwd``: the number of commands run, or None at a failure."""
    print(f"\n== {page}  (in {cwd})", flush=True)
    ran = 0
    for block in blocks:
        missing = [p for p in block.needs if not (cwd / p).exists()]
        if block.skip or missing:
            reason = block.skip or f"needs {', '.join(missing)}, absent here"
            print(f"-- {page}:{block.line}: block skipped: {reason}", flush=True)
            skipped.append((f"{page}:{block.line} (block)", reason))
            continue
        for command in block.commands:
            if command.run is None:
                print(f"-- {command.where}: skipped ({command.note}): {command.written}", flush=True)
                skipped.append((command.where, command.note))
                continue
            note = f"   [{command.note}]" if command.note else ""
            print(f"+ {command.where}: {shown(command)}{note}", flush=True)
            status, seconds, out, err = run_command(command, cwd, verbose)
            if status != 0:
                print(f"\nFAILED: {command.where} exited with status {status} after {seconds:.1f} s:\n"
                      f"{shown(command)}", flush=True)
                if not verbose:
                    tail = out.splitlines()[-STDOUT_TAIL:]
                    print(f"--- stderr ---\n{err.rstrip()}\n--- stdout (last {len(tail)} lines) ---\n"
                          + "\n".join(tail), flush=True)
                return None
            print(f"  ok, {seconds:.1f} s", flush=True)
            ran += 1
    return ran


def scratch_name(page: str) -> str:
    return Path(page).with_suffix("").as_posix().replace("/", "-")


def run_all(repo: Path, pages: dict, scratch: Path, verbose: bool = False) -> bool:
    """Run the pages (README.md first) in copies under ``scratch``; False at the first failure."""
    link_outside(repo, pages, scratch)
    start, skipped, ran = time.perf_counter(), [], 0
    first = scratch / scratch_name(FIRST_PAGE)
    copy_tracked(repo, tracked_files(repo), first)
    for page, blocks in pages.items():
        if not blocks:
            continue
        cwd = first
        if page != FIRST_PAGE:
            cwd = scratch / scratch_name(page)
            shutil.copytree(first, cwd, symlinks=True)
        count = run_page(page, blocks, cwd, verbose, skipped)
        if count is None:
            return False
        ran += count
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    print(f"\n{ran} commands of {len(pages)} pages ran in {minutes} min {seconds} s; {len(skipped)} skipped:")
    for where, why in skipped:
        print(f"  {where}: {why}")
    return True


def print_plan(pages: dict, repo: Path) -> None:
    for page, blocks in pages.items():
        print(f"== {page}")
        for block in blocks:
            needs = [p + ("" if (repo / p).exists() or not p.startswith("../") else " (absent)")
                     for p in block.needs]
            print(f"-- {page}:{block.line} {block.language}"
                  + (f"; skipped: {block.skip}" if block.skip else "")
                  + (f"; needs {', '.join(needs)}" if needs else ""))
            for c in block.commands:
                first_line = c.written.strip().splitlines()[0] + (" ..." if c.language == "python" else "")
                print(f"  {c.line:4d}  {first_line}")
                if c.run is None:
                    print(f"        skipped: {c.note}")
                elif c.run != c.written:
                    print(f"        runs as: {c.run}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="pages to run after README.md (default: all)")
    parser.add_argument("--list", action="store_true", help="print the plan and run nothing")
    parser.add_argument("--scratch", type=Path, help="scratch folder (new or empty; kept)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every command's output")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    try:
        pages = plan(repo, args.pages)
    except MarkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.list:
        print_plan(pages, repo)
        return 0
    if args.scratch:
        args.scratch.mkdir(parents=True, exist_ok=True)
        if any(args.scratch.iterdir()):
            print(f"error: {args.scratch} is not empty", file=sys.stderr)
            return 1
    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="pyasync-snn-docs-"))).resolve()
    ok = run_all(repo, pages, scratch, args.verbose)
    if ok and not (args.keep or args.scratch):
        shutil.rmtree(scratch)
    elif not ok or args.keep:
        print(f"scratch folder kept: {scratch}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
