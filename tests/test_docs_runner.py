"""scripts/run_docs.py, the runner of the docs' commands: blocks, markers, scratch copies."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_docs", ROOT / "scripts" / "run_docs.py")
run_docs = sys.modules["run_docs"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_docs)

PAGE = """# A page

```bash
first --epochs 20 --out a.h5          # ci: --epochs 1
# a comment line, not a command

second --long \\
    --more x   # ci: skip (long: ~20 min)
third '# not a comment' --flag        # people read this  # ci: --quick --seeds 1
```

```
synopsis MODEL DATA   (plain blocks are not run)
```

<!-- ci: skip (an excerpt) -->
```python
print("skipped")
```

```python
import sys
print(sys.argv)
```

```bash
convert ../shared/data/nmnist-1k --out nm/x.h5
```

<!-- ci: needs nm/x.h5 -->
```bash
train --data nm/x.h5
```
"""


def commands(blocks):
    return [(c.line, c.run) for b in blocks for c in b.commands]


def test_blocks_commands_and_their_lines():
    blocks = run_docs.parse_page(PAGE, "page.md")
    assert [(b.line, b.language) for b in blocks] == [(3, "bash"), (17, "python"), (21, "python"),
                                                     (26, "bash"), (31, "bash")]
    assert commands(blocks)[:3] == [
        (4, "first --epochs 1 --out a.h5"),
        (7, None),
        (9, "third '# not a comment' --flag --quick --seeds 1"),
    ]
    assert blocks[0].commands[1].written == "second --long --more x   # ci: skip (long: ~20 min)"
    assert blocks[0].commands[1].note == "(long: ~20 min)"
    assert blocks[2].commands[0].run == "import sys\nprint(sys.argv)\n"


def test_block_markers_and_outside_paths():
    blocks = run_docs.parse_page(PAGE, "page.md")
    assert blocks[1].skip == "(an excerpt)"
    assert blocks[2].skip == "" and blocks[2].needs == ()
    assert blocks[3].needs == ("../shared/data/nmnist-1k",)
    assert blocks[4].needs == ("nm/x.h5",)


@pytest.mark.parametrize("code, spec, expected", [
    ("train --epochs 20 --out m.h5", "--epochs 1", "train --epochs 1 --out m.h5"),
    ("train --epochs=20", "--epochs 1", "train --epochs=1"),
    ("experiment --out s/", "--quick", "experiment --out s/ --quick"),
    ("experiment --quick --out s/", "--quick", "experiment --quick --out s/"),
    ("evaluate m.h5 --stop-on-output --stop-scope t", "--stop-on-output 2",
     "evaluate m.h5 --stop-on-output 2 --stop-scope t"),
    ("bench --out b.md", "--samples 4 --repeats 1", "bench --out b.md --samples 4 --repeats 1"),
    ("train --epochs-max 20", "--epochs 1", "train --epochs-max 20 --epochs 1"),
])
def test_marker_options_replace_or_append(code, spec, expected):
    assert run_docs.apply_options(code, run_docs.parse_options(spec)) == expected


@pytest.mark.parametrize("page", [
    "```bash\ncmd  # ci: epochs 1\n```\n",                                  # not an option
    "```bash\ncmd  # ci: skip\n```\n",                                        # no reason
    "<!-- ci: run -->\n```bash\ncmd\n```\n",                                  # unknown verb
    "```bash\ncmd\n",                                                         # never closed
    "```bash\ncmd \\\n```\n",                                                 # continued to the end
    "<!-- ci: skip (x) -->\n\n```bash\ncmd\n```\n",                          # not right above
    "<!-- ci: skip (x) -->\n```\nsynopsis\n```\n",                            # above a plain block
    "```python\nrun()  # ci: skip (x)\n```\n",                                # a line marker in python
])
def test_a_marker_or_block_it_cannot_follow_is_an_error(page):
    with pytest.raises(run_docs.MarkerError):
        run_docs.parse_page(page, "page.md")


def test_comments_split_like_bash():
    assert run_docs.split_comment("a 'b # c' \"d # e\" f#g # h") == ("a 'b # c' \"d # e\" f#g", "# h")
    assert run_docs.split_comment("echo \\# x") == ("echo \\# x", "")


def test_readme_opens_with_the_two_ci_commands_and_every_page_parses():
    pages = [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md")), ROOT / "data" / "README.md"]
    blocks = {p: run_docs.parse_page(p.read_text(encoding="utf-8"), p.name) for p in pages}  # no bad marker
    run_docs.check_first_block(blocks[ROOT / "README.md"])
    first = blocks[ROOT / "README.md"][0]
    assert len(first.commands) == 2 and all(c.run == c.written for c in first.commands)
    with pytest.raises(run_docs.MarkerError):
        run_docs.check_first_block(run_docs.parse_page("```bash\npip install .\n```\n", "README.md"))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_pages_run_in_copies_that_see_readme_outputs_but_not_each_other(tmp_path):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "README.md").write_text("```bash\ntouch one\ntouch two\n```\n\n"
                                    "```bash\necho made > made.txt\ntest -f tracked.txt\n```\n")
    (repo / "tracked.txt").write_text("x")
    (repo / "docs" / "a.md").write_text("```bash\ntest -f made.txt\ntouch from-a\n"
                                        "false  # ci: skip (would fail)\n```\n")
    (repo / "docs" / "b.md").write_text("```bash\ntest ! -e from-a\n```\n\n"
                                        "```python\nopen('made.txt').read()\n```\n")
    git = ["git", "-C", str(repo)]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    (repo / "untracked.txt").write_text("a fresh clone has no such file")

    pages = run_docs.plan(repo)
    assert list(pages) == ["README.md", "docs/a.md", "docs/b.md"]
    assert run_docs.run_all(repo, pages, tmp_path / "scratch")
    assert not (tmp_path / "scratch" / "README" / "untracked.txt").exists()
    assert (tmp_path / "scratch" / "docs-a" / "from-a").exists()

    (repo / "docs" / "b.md").write_text("```bash\ntest -e from-a\n```\n")
    assert not run_docs.run_all(repo, run_docs.plan(repo), tmp_path / "scratch2")
