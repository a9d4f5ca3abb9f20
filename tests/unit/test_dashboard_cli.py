"""``celeriac dashboard`` and ``celeriac flower`` refuse what is unsafe before loading the
app: a plain-text ``--basic-auth`` password, a short token, a non-loopback address without
authentication; ``--hash-password`` prints a hash that checks; Flower's underscore
spellings are accepted. (Serving is covered by the integration tests.)"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from celeriac.cli import cli
from celeriac.dashboard.security import check_password, hash_password


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.output


def test_a_plain_password_is_refused_with_the_way_to_hash_it() -> None:
    code, output = run("flower", "--basic_auth", "ann:secret")
    assert code != 0
    assert "hashed, not in plain text" in output and "--hash-password" in output


def test_an_open_address_without_auth_is_refused() -> None:
    code, output = run("dashboard", "--address", "0.0.0.0", "--port", "5599")
    assert code != 0 and "will not listen on 0.0.0.0 without authentication" in output


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("short\n")
    code, output = run("dashboard", "--token-file", str(token))
    assert code != 0 and "too short" in output


def test_hash_password_prints_a_hash_that_checks() -> None:
    code, output = run("dashboard", "--hash-password", stdin="pa55word\npa55word\n")
    assert code == 0
    encoded = output.strip().splitlines()[-1]
    assert encoded.startswith("pbkdf2_sha256$600000$")
    assert check_password("pa55word", encoded) and not check_password("other", encoded)


def test_hashes_are_salted() -> None:
    assert hash_password("same", iterations=1000) != hash_password("same", iterations=1000)
