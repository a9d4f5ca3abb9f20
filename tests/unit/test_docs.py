"""The documentation runs: every Python example in README.md and docs/**/*.md, the quick
start, and the settings reference checked against the declared settings.

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
- every other block runs as a script and must be self-contained.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from celeriac.config.settings import SETTINGS
from tests.conftest import service_missing

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
        pytest.fail(f"unknown service {service!r} in a '# needs:' line; known: redis, rabbitmq")
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
    assert len(skipped) <= 3, "skipped examples should stay rare"


RUNNABLE = [e for e in EXAMPLES if not e.first_line.startswith(SKIP)]


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id for e in RUNNABLE])
def test_example_runs(example: Example, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    needs = NEEDS.match(example.first_line)
    extra_env: dict[str, str] = {}
    if needs and needs.group(1) == "rabbitmq":  # a vhost of the session's own (conftest)
        extra_env["CELERIAC_DOCS_AMQP_URL"] = request.getfixturevalue("amqp_url")
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
