"""The first page and the docs stay true: links resolve, named files and flags exist, the README
stays short, and its test command is the one CI runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
README_MAX_LINES = 210
CI_MARKER = "# --- the README's test command, verbatim ---"

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FILE_IN_CODE = re.compile(r"[\w.-]+(?:/[\w.-]+)+\.(?:py|md|sh|json|png|gif|svg|toml|dot)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")


def prose(text: str) -> str:
    """The text with fenced code blocks blanked out (line numbers kept)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def links(text: str) -> list[str]:
    """Targets of every Markdown link and image outside code."""
    return LINK.findall(INLINE_CODE.sub("", prose(text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen, result = {}, set()
    for heading in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_image_resolves(page):
    assert broken_links(page) == []


def test_the_readme_links_are_found():
    found = links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "docs/results.md" in found and "docs/mnist_real_test64.png" in found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_named_in_code_exists(page):
    """`benchmarks/results/x.json` in a page names a file that is there (relative to the root or the page)."""
    missing = []
    for span in INLINE_CODE.findall(page.read_text(encoding="utf-8")):
        for name in FILE_IN_CODE.findall(span[1]):
            if not ((ROOT / name).exists() or (page.parent / name).exists()):
                missing.append(name)
    assert missing == []


def test_flags_in_the_readme_and_training_page_exist():
    """Every --flag the first pages mention is an option some script or module defines."""
    code = "\n".join(p.read_text(encoding="utf-8") for folder in ("examples", "minigan", "benchmarks")
                     for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sh"))
    pages = [ROOT / "README.md", ROOT / "docs" / "training.md"]
    flags = {f for page in pages for f in FLAG.findall(page.read_text(encoding="utf-8"))}
    flags -= {"--no-build-isolation", "--no-deps", "--help"}  # pip's, and argparse's own
    assert flags, "no flags found: the pattern broke"
    assert sorted(f for f in flags if f'"{f}"' not in code) == []


def test_readme_is_a_short_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md is {len(lines)} lines, more than {README_MAX_LINES}"


def readme_test_command(text: str) -> str:
    """The one line of a fenced block in the README that runs pytest."""
    commands = [line.strip() for m in FENCE.finditer(text) for line in m.group(0).splitlines()[1:-1]
                if "-m pytest" in line and not line.lstrip().startswith("#")]
    assert len(commands) == 1, f"expected one pytest command in the README's code blocks, found {commands}"
    return commands[0]


def ci_test_command(script: str) -> str:
    """The command on the line after .ci/run's marker, without the tee that logs it."""
    lines = script.splitlines()
    assert CI_MARKER in [line.strip() for line in lines], f".ci/run lost its marker {CI_MARKER!r}"
    line = lines[[line.strip() for line in lines].index(CI_MARKER) + 1].strip()
    return re.sub(r"\s+2>&1\s*\|\s*tee\b.*$", "", line)


def test_readme_test_command_is_what_ci_runs():
    readme = readme_test_command((ROOT / "README.md").read_text(encoding="utf-8"))
    ci = ci_test_command((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert readme == ci
    assert readme == 'pip install -e ".[dev]" && ruff check . && python -m pytest'


def test_the_checks_catch_what_they_look_for(tmp_path):
    """A broken link, a missing anchor and a changed command are each reported."""
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A `paper` heading, U(−√3, √3)\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page.write_text("[ok](there.md#a-paper-heading-u3-3) [ok](there.md#twice-1) ![gone](missing.png)\n"
                    "[bad](there.md#nowhere) `[not a link](missing.md)`\n```\n[in code](missing.md)\n```\n",
                    encoding="utf-8")
    problems = broken_links(page)
    assert len(problems) == 2
    assert "missing.png" in problems[0] and "#nowhere" in problems[1]
    ci = f'set -e\n{CI_MARKER}\npip install -e ".[dev]" && python -m pytest -x 2>&1 | tee "$log"\n'
    assert ci_test_command(ci) == 'pip install -e ".[dev]" && python -m pytest -x'


def test_training_page_states_each_configs_prior():
    """docs/training.md names the prior each config draws by default."""
    from minigan import gan

    written = {"normal": "z ~ N(0, I)", "uniform": "z ~ U(−√3, √3)"}
    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    for name, config in gan.CONFIGS.items():
        heading = f"### The `{name}` config\n"
        assert heading in text, f"docs/training.md has no section {heading.strip()!r}"
        section = text.split(heading, 1)[1].split("\n#", 1)[0]
        # The section states the default first, then the flag for the other prior.
        first = min(((section.find(w), w) for w in written.values() if w in section), default=(0, "no prior"))[1]
        assert first == written[config.noise], f"{name}: the page says {first}, the config draws {config.noise}"


def table_rows(text: str) -> dict[str, list[str]]:
    """First cell → the other cells, for every Markdown table row in `text` (header rows included)."""
    rows = {}
    for line in prose(text).splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
    return rows


def test_readme_benchmark_table_matches_benchmarks_readme():
    """The README's step times are the ones benchmarks/README.md reports, row by row."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Benchmarks", 1)[1]
    bench = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert "\n### Measured on the CPU\n" in bench, "benchmarks/README.md has no section 'Measured on the CPU'"
    source = table_rows(bench.split("\n### Measured on the CPU\n", 1)[1].split("\n#", 1)[0])
    rows = {k: v for k, v in table_rows(readme).items() if k != "batch"}
    assert rows, "no table under the README's Benchmarks heading"
    for name, cells in rows.items():
        assert name in source, f"benchmarks/README.md has no row {name!r}"
        times = [re.match(r"[\d.]+(?: \([\d.]+×\))?", c).group(0) for c in source[name]]
        assert cells == times, f"{name}: README {cells}, benchmarks/README.md {times}"


def test_readme_reproduced_numbers_are_on_the_results_page():
    """Each number in the README's 'What is reproduced' table is one docs/results.md reports."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## What is reproduced", 1)[1]
    results = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    rows = table_rows(readme.split("\n## ", 1)[0])
    numbers = {n for cells in rows.values() for cell in cells[:-1]  # the last column is the link
               for n in re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?(?: ± \d+(?:\.\d+)?)?", cell)}
    assert numbers, "no numbers found: the pattern broke"
    assert sorted(n for n in numbers if n not in results) == []
