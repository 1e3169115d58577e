"""The README and docs/: every command they quote names a script that exists and flags that script accepts,
every internal link resolves, and the Python page's example runs and agrees with the reference equations.

The thesis's commands are quoted in the README and must keep working as written; this catches a renamed script
or flag before a user does. Each script's --help is read in-process (runpy), once per script.
"""
from __future__ import annotations

import re

import pytest

from tests.helpers.docs import code_blocks
from tests.helpers.scripts import REPO, help_text

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _commands() -> list[tuple[str, str]]:
    """(page name, 'script flags...') for every `python3 <script>.py ...` line of every bash block."""
    commands = []
    for page in PAGES:
        for block in code_blocks(page, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#", 1)[0].strip()
                for match in re.finditer(r"python3 (\S+\.py)((?:(?!&&|\|).)*)", line):
                    commands.append((page.name, f"{match.group(1)}{match.group(2)}".strip()))
    return commands


COMMANDS = _commands()


def test_the_readme_shows_the_thesis_commands():
    scripts = {c.split()[0] for page, c in COMMANDS if page == "README.md"}
    for script in ("alignments/alignments_and_trans.py", "embeddings/glove_embedding.py", "embeddings/nlp_embedding.py",
                   "embeddings/speech_embedding.py", "embeddings/audio_embeddings.py",
                   "embeddings/matrix_embeddings.py", "experiments/experiment_CKA.py",
                   "experiments/experiment_ASIF.py", "datasets/download_librispeech.py",
                   "datasets/resample_corpus.py", "experiments/reproduce.py"):
        assert script in scripts, script


def test_every_docs_page_starts_with_a_command():
    for page in PAGES[1:]:
        text = page.read_text()
        first_block = re.search(r"```(\w*)\n", text)
        assert first_block and first_block.group(1) == "bash", f"{page.name} does not start with a command block"
        assert text.index("```bash") < text.index("\n## ") if "\n## " in text else True, page.name


@pytest.mark.parametrize("script", sorted({c.split()[0] for _, c in COMMANDS}))
def test_quoted_scripts_exist_and_take_the_quoted_flags(script):
    assert (REPO / script).is_file(), f"the docs name {script}, which does not exist"
    shown = help_text(script)
    for page, command in COMMANDS:
        if command.split()[0] != script:
            continue
        for flag in re.findall(r"(?<!\S)(--[a-z_0-9]+)", command):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown), \
                f"{page}: {command}: {flag} is not in {script} --help"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_internal_links_resolve():
    bad = []
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.name}: {target} (no such file)")
                continue
            if anchor and dest.suffix == ".md":
                anchors = {_anchor(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(), flags=re.M)}
                if anchor not in anchors:
                    bad.append(f"{page.name}: {target} (no heading with that anchor)")
    assert not bad, "\n".join(bad)


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().encode()) < 12_000


def test_library_paths_named_in_the_docs_exist():
    """Backquoted paths of the library, scripts and tools in the docs point at real files or folders (outputs a
    command makes, such as alignments/audio_alignments_20_16.json, are not looked for)."""
    bad = []
    for page in PAGES:
        for path in re.findall(r"`((?:wordreps|embeddings|experiments|alignments|datasets|benchmarks|tools|tests)/"
                               r"[\w/.\-]*\w)`", page.read_text()):
            source = path.startswith(("wordreps/", "benchmarks/", "tools/", "tests/")) or path.endswith(".py")
            if any(ch in path for ch in "<*{") or not source:
                continue
            if not (REPO / path).exists():
                bad.append(f"{page.name}: {path}")
    assert not bad, "\n".join(bad)


def test_tests_named_in_the_docs_exist():
    """``area/test_file.py::test_name`` references (the faults table's last column, the testing page) name a
    test file under tests/ and a test function defined in it, so the docs cannot point at a test that moved."""
    bad = []
    for page in PAGES:
        text = page.read_text()
        for ref in re.finditer(r"((?:[a-z_]+/)?test_\w+\.py)((?:::\w+)?)", text):
            path, func = ref.group(1), ref.group(2)[2:]
            files = [REPO / "tests" / path] if "/" in path else list((REPO / "tests").rglob(path))
            files = [f for f in files if f.is_file()]
            if not files:
                bad.append(f"{page.name}: {path} (no such test file)")
            elif func and not any(re.search(rf"^(async )?def {func}\(", f.read_text(), flags=re.M) for f in files):
                bad.append(f"{page.name}: {path}::{func} (no such test)")
    assert not bad, "\n".join(bad)


def test_paths_named_in_the_tests_exist():
    """Paths of test files that the tests themselves name (``tests/<area>/<file>.py``, optionally followed by
    ``::<test>``, in docstrings, comments and usage lines) point at files and tests that exist, so a moved file
    cannot leave a stale pointer behind. Globs such as ``tests/embeddings/test_audio_*.py`` are not matched."""
    bad = []
    for source in sorted((REPO / "tests").rglob("*")):
        if source.suffix not in (".py", ".md") or not source.is_file():
            continue
        for ref in re.finditer(r"(?<![\w/])(tests/[\w/.\-]*\w\.py)((?:::\w+)?)", source.read_text(encoding="utf-8")):
            path, func = REPO / ref.group(1), ref.group(2)[2:]
            where = f"{source.relative_to(REPO)}: {ref.group(0)}"
            if not path.is_file():
                bad.append(f"{where} (no such file)")
            elif func and not re.search(rf"^(async )?def {func}\(", path.read_text(encoding="utf-8"), flags=re.M):
                bad.append(f"{where} (no such test)")
    assert not bad, "\n".join(bad)
