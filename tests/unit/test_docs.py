"""The documentation runs: every Python example in README.md and docs/**/*.md, the quick
start, and the settings reference checked against the declared settings. And it renders:
in every Markdown page (README.md, docs/, bench/, examples/) relative links and their
anchors resolve, tables are whole, and nothing points outside the repository.

Each example runs in its own interpreter (a subprocess), so apps, shared tasks and signal
receivers never leak from one example into another, with warnings turned into errors as
in the test suite. Conventions for ```python blocks:

- a first line ``# not executed: <reason>`` leaves the block out (project-layout snippets;
  ``test_the_docs_have_examples`` keeps them rare);
- a first line ``# test file: <name>.py`` runs the block as a test module under pytest;
- a first line ``# needs: redis`` runs the block only when the Redis at
  ``redis://127.0.0.1:6379/15`` answers: skipped with the reason locally, failed in CI
  (``CELERIAC_REQUIRE_SERVICES=1``), like the Redis tests. Such a block uses that URL, a
  key prefix of its own, and deletes its keys;
- a first line ``# needs: rabbitmq`` runs the block only when the RabbitMQ at
  ``127.0.0.1:5672`` answers (skipped locally, failed in CI, likewise). The block reads
  its broker URL from ``CELERIAC_DOCS_AMQP_URL``, a vhost of the test session's own that
  is deleted afterwards, with ``amqp://guest:guest@127.0.0.1:5672//`` as the fallback;
- a first line ``# needs: memcached`` runs the block with a memcached of the test
  session's own (skipped locally without the binary, failed in CI); the block reads its
  ``host:port`` from ``CELERIAC_DOCS_MEMCACHED``, with ``127.0.0.1:11211`` as the fallback;
- every other block runs as a script and must be self-contained.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

import pytest

from celeriac.config.settings import SETTINGS
from tests.conftest import service_missing
from tests.memcached_server import memcached_server

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
SKIP = "# not executed:"
TEST_FILE = re.compile(r"^# test file: (test_\w+\.py)\s*$")
NEEDS = re.compile(r"^# needs: (\w+)\s*$")
DOCS_REDIS_URL = "redis://127.0.0.1:6379/15"  # the Redis the documented examples use
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
TIMEOUT = 60


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.code.split("\n", 1)[0].strip()


def python_examples() -> list[Example]:
    examples = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            examples.append(Example(path, line, match.group(1)))
    return examples


EXAMPLES = python_examples()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    # The examples import the package under test, even when it is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def _run(
    args: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**_env(), **(extra_env or {})}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _require(service: str) -> None:
    """Skip (locally) or fail (in CI) unless ``service`` answers where the examples expect."""
    if service != "redis":
        pytest.fail(
            f"unknown service {service!r} in a '# needs:' line; known: redis, rabbitmq, memcached"
        )
    try:
        import redis
    except ModuleNotFoundError:
        service_missing("Redis", "redis-py is not installed (pip install -e '.[redis]')")
    client = redis.Redis.from_url(DOCS_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{DOCS_REDIS_URL} did not answer ({exc})")
    finally:
        client.close()


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_doc", ROOT / "scripts" / "gen_config_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the settings reference -------------------------------------------------------------------
def test_configuration_doc_is_generated_from_the_settings() -> None:
    generator = _load_generator()
    current = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert current == generator.render(), (
        "docs/configuration.md is stale: run `python scripts/gen_config_doc.py`"
    )


def test_gen_config_doc_check_passes() -> None:
    done = _run([sys.executable, str(ROOT / "scripts" / "gen_config_doc.py"), "--check"], ROOT)
    assert done.returncode == 0, done.stderr


def test_configuration_doc_lists_exactly_the_declared_settings() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE)
    assert sorted(rows) == sorted(SETTINGS), "a setting is missing from, or extra in, the doc"
    assert len(rows) == len(set(rows)), "a setting is listed twice"


def test_the_check_notices_a_stale_file(tmp_path: Path) -> None:
    generator = _load_generator()
    stale = tmp_path / "configuration.md"
    stale.write_text(generator.render().replace("task_delivery_limit", "task_delivery_limt"))
    generator.DOC = stale
    assert generator.main(["--check"]) == 1


# -- the examples -----------------------------------------------------------------------------
def test_the_docs_have_examples() -> None:
    pages = {example.path.relative_to(ROOT).as_posix() for example in EXAMPLES}
    assert {
        "README.md",
        "docs/tasks.md",
        "docs/calling.md",
        "docs/results.md",
        "docs/testing.md",
        "docs/brokers/redis.md",
        "docs/brokers/rabbitmq.md",
    } <= pages
    skipped = [e for e in EXAMPLES if e.first_line.startswith(SKIP)]
    # Today: two project layouts (tasks, Django), a settings.py and an Alembic env.py
    # fragment (outbox), and an exporter that needs a collector (OpenTelemetry).
    assert len(skipped) <= 5, "skipped examples should stay rare"


@pytest.fixture(scope="session")
def docs_memcached() -> Iterator[str]:
    with memcached_server() as address:
        yield address


RUNNABLE = [e for e in EXAMPLES if not e.first_line.startswith(SKIP)]


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id for e in RUNNABLE])
def test_example_runs(example: Example, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    needs = NEEDS.match(example.first_line)
    extra_env: dict[str, str] = {}
    if needs and needs.group(1) == "rabbitmq":  # a vhost of the session's own (conftest)
        extra_env["CELERIAC_DOCS_AMQP_URL"] = request.getfixturevalue("amqp_url")
    elif needs and needs.group(1) == "memcached":  # a server of the session's own
        extra_env["CELERIAC_DOCS_MEMCACHED"] = request.getfixturevalue("docs_memcached")
    elif needs:
        _require(needs.group(1))
    test_file = TEST_FILE.match(example.first_line)
    if test_file:
        script = tmp_path / test_file.group(1)
        script.write_text(example.code, encoding="utf-8")
        done = _run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
             "--rootdir", str(tmp_path), str(script)],
            tmp_path,
        )  # fmt: skip
    else:
        script = tmp_path / "example.py"
        script.write_text(example.code, encoding="utf-8")
        done = _run([sys.executable, "-W", "error", str(script)], tmp_path, extra_env)
    assert done.returncode == 0, f"example at {example.id} failed:\n{done.stdout}\n{done.stderr}"


def test_quickstart_runs_a_real_worker(tmp_path: Path) -> None:
    """The README's first command: a worker on the embedded Redis, tasks from another process."""
    embedded = pytest.importorskip("celeriac.brokers.embedded")
    if not embedded.available():
        service_missing("the embedded Redis", "celeriac[embedded] is not installed")
    env = {**_env(), "CELERIAC_EMBEDDED_DIR": str(tmp_path), "CELERIAC_VENV": sys.prefix}
    script = ROOT / "examples" / "quickstart" / "run.sh"
    try:
        done = subprocess.run(
            ["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        stopper = "from celeriac.brokers.embedded import stop_embedded as s; s()"
        subprocess.run([sys.executable, "-c", stopper], cwd=ROOT, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "add: [0, 2, 4, 6, 8]" in done.stdout
    assert "hello world, from celeriac@" in done.stdout
    assert "add after 1 s: 42" in done.stdout
    assert "ready." in done.stderr and "warm shutdown" in done.stderr


# -- links, tables and references -------------------------------------------------------------
# What a reader sees on GitHub: pure file reading, with GitHub's Markdown rules (GFM).
MARKDOWN = sorted(
    {
        ROOT / "README.md",
        *(ROOT / "docs").glob("**/*.md"),
        *(ROOT / "bench").glob("**/*.md"),
        *(ROOT / "examples").glob("**/*.md"),
    }
)
EXAMPLE_FILES = sorted(p for p in (ROOT / "examples").glob("**/*") if p.is_file())
FENCE_OPEN = re.compile(r"^\s*(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)=\"([^\"]+)\"")
CELL_BORDER = re.compile(r"(?<!\\)\|")  # GFM splits cells on every unescaped pipe, in code too
DELIMITER_CELL = re.compile(r"^\s*:?-+:?\s*$")
ENDS_TABLE = re.compile(r"^\s*(?:#|>|[-*+]\s|\d+[.)]\s)")  # another block ends a table
OUTSIDE_REFERENCES = [
    re.compile(r"\.\./shared\b"),
    re.compile(r"\bseeds?\s+\d+|\bthe seeds\b", re.IGNORECASE),
    re.compile(r"\bthe brief\b(?=\s*(?:[.,;:)]|$|and\b|says\b|said\b|asks\b))", re.I | re.M),
    re.compile(r"\b(?:DESIGN|STYLE)\.md\b"),
    # our own tracker's items; Celery's public ones ("Celery issue #6760") are fine to cite
    re.compile(r"(?<!celery )(?<!celery's )\bissues?\s+#?\d+|\bthe benchmark issue\b", re.I),
]


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text with fenced code blanked out (line numbers kept)."""
    lines, fence = text.split("\n"), ""
    for number, line in enumerate(lines):
        opening = FENCE_OPEN.match(line)
        if fence:
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = ""
            lines[number] = ""
        elif opening:
            fence, lines[number] = opening.group(1), ""
    return lines


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every inline link and image outside code."""
    prose = CODE_SPAN.sub(_blank, "\n".join(prose_lines(text)))
    return [(prose.count("\n", 0, m.start()) + 1, m.group(2)) for m in LINK.finditer(prose)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lowercased, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    kept = (c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found: set[str] = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for line in prose_lines(text):
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(1))
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    problems, root = [], root.resolve()
    for line, target in links(path.read_text(encoding="utf-8")):
        if not target or SCHEME.match(target):
            continue
        name, _, anchor = target.partition("#")
        dest = (path.parent / unquote(name)).resolve() if name else path.resolve()
        where = f"line {line}: link {target!r}"
        if not dest.is_relative_to(root):
            problems.append(f"{where} points outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no such file {dest.relative_to(root)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            near = difflib.get_close_matches(anchor, anchors(dest), n=1)
            hint = f" (did you mean #{near[0]}?)" if near else ""
            problems.append(f"{where}: {dest.name} has no heading with that anchor{hint}")
    return problems


def cell_count(row: str) -> int:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return len(CELL_BORDER.split(row))


def is_delimiter_row(row: str) -> bool:
    inner = row.strip().strip("|")
    return "|" in row and all(DELIMITER_CELL.match(c) for c in CELL_BORDER.split(inner))


def _table_end(lines: list[str], start: int, problems: list[str]) -> int:
    """Checks the table whose header is ``lines[start]``; returns the line after it."""
    width = cell_count(lines[start])
    if cell_count(lines[start + 1]) != width:
        problems.append(f"line {start + 2}: the separator row's columns differ from the header's")
    end = start + 2
    while end < len(lines) and lines[end].strip() and not ENDS_TABLE.match(lines[end]):
        if "|" not in lines[end]:  # GFM makes it a row of the table: a blank line was missing
            problems.append(f"line {end + 1}: text right after a table; leave a blank line")
        elif cell_count(lines[end]) != width:
            problems.append(f"line {end + 1}: {cell_count(lines[end])} columns, header {width}")
        end += 1
    return end


def table_problems(text: str) -> list[str]:
    lines, problems, number = prose_lines(text), [], 0
    while number < len(lines):
        line = lines[number]
        if number + 1 < len(lines) and "|" in line and is_delimiter_row(lines[number + 1]):
            number = _table_end(lines, number, problems)
            continue
        if line.lstrip().startswith("|"):
            problems.append(
                f"line {number + 1}: a table row outside any table, rendered as raw pipes "
                "(move it into its table, before the blank line that ends it)"
            )
        number += 1
    return problems


def reference_problems(text: str) -> list[str]:
    return [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r} names something outside "
        "the repository; say what it means for the reader instead"
        for pattern in OUTSIDE_REFERENCES
        for m in pattern.finditer(text)
    ]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_relative_links_resolve(path: Path) -> None:
    problems = link_problems(path)
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_tables_render_as_tables(path: Path) -> None:
    problems = table_problems(path.read_text(encoding="utf-8"))
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", MARKDOWN + EXAMPLE_FILES, ids=_rel)
def test_no_references_outside_the_repository(path: Path) -> None:
    problems = reference_problems(path.read_text(encoding="utf-8"))
    assert not problems, f"{_rel(path)}:\n" + "\n".join(problems)


def test_the_readme_lists_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Documentation\n(.*?)(?=^## )", readme, re.DOTALL | re.MULTILINE)
    assert section, "README.md has no '## Documentation' section"
    listed = {(ROOT / target.partition("#")[0]).resolve() for _, target in links(section[1])}
    missing = [_rel(p) for p in sorted((ROOT / "docs").glob("**/*.md")) if p not in listed]
    assert not missing, f"README.md's documentation table leaves out {missing}"


def test_the_checks_notice_broken_markdown(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text(
        "# Time limits\n\n## `link` and `link_error`\n\n## Time limits\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "See [limits](other.md#time-limits-1), [callbacks](other.md#link-and-link_error),\n"
        "[gone](missing.md), [typo](other.md#time-limit), [up](../x.md), [web](https://x.org).\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | `x | y` |\ntrailing text\n\n"
        "Closing paragraph.\n| stranded | row |\n\n```\n| code | is | not a table |\n```\n"
        "As the brief says, per seed 004 and DESIGN.md (issue 8; Celery issue #6760 is public).\n"
    )  # fmt: skip
    assert link_problems(page, root=tmp_path) == [
        "line 2: link 'missing.md': no such file missing.md",
        "line 2: link 'other.md#time-limit': other.md has no heading with that anchor "
        "(did you mean #time-limits?)",
        "line 2: link '../x.md' points outside the repository",
    ]
    assert table_problems(page.read_text()) == [
        "line 7: 3 columns, header 2",
        "line 8: text right after a table; leave a blank line",
        "line 11: a table row outside any table, rendered as raw pipes "
        "(move it into its table, before the blank line that ends it)",
    ]
    found = [p.split(": ", 1)[1].split(" names")[0] for p in reference_problems(page.read_text())]
    assert found == ["'seed 004'", "'the brief'", "'DESIGN.md'", "'issue 8'"]
    assert (
        github_slug("Where the code differs from DESIGN.md")
        == "where-the-code-differs-from-designmd"
    )
