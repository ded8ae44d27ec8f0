"""Every command line the README (and docs/) shows still runs as written: a renamed key, group or flag
fails here instead of in a reader's terminal.

``python src/<entry>.py <overrides>``: the overrides compose the entry point's config, with Hydra's own
(``hydra/launcher=...``) and a sweep's first value (``routing.iterations=1,2,3`` -> 1); placeholders
(``ckpt_path=<ckpt>``, ``[optional=overrides]``, ``...``) are left out. ``python scripts/<name>.py
--flags``: the script exists, and its ``--help`` lists every flag shown.
"""

import re
import shlex
import subprocess
import sys

import pytest

from tests.helpers import ROOT, compose_config

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
COMMAND = re.compile(r"python (src|scripts)/(\w+)\.py([^`#\n]*)")


def _commands() -> list[tuple[str, str, str, str]]:
    """(document:line, folder, script, arguments) of every command line shown."""
    found = []
    for document in DOCUMENTS:
        for number, line in enumerate(document.read_text().splitlines(), start=1):
            for folder, script, arguments in COMMAND.findall(line):
                found.append((f"{document.name}:{number}", folder, script, arguments.strip()))
    return found


def _first_of_sweep(override: str) -> str:
    """key=a,b,c -> key=a (a list in brackets is one value)."""
    key, _, value = override.partition("=")
    if "," in value and not value.startswith("["):
        value = value.split(",")[0]
    return f"{key}={value}"


def _overrides(arguments: str) -> list[str]:
    tokens = shlex.split(arguments.replace("$", ""))
    kept = []
    for token in tokens:
        if token in ("-m", "--multirun", "--help", "...") or "<" in token or ">" in token:
            continue
        if token.startswith("[") and token.endswith("]"):  # [optional=override]: shown as optional
            continue
        kept.append(_first_of_sweep(token))
    return kept


COMMANDS = _commands()
ENTRY_COMMANDS = [c for c in COMMANDS if c[1] == "src"]
SCRIPT_COMMANDS = [c for c in COMMANDS if c[1] == "scripts"]


def test_the_documents_show_commands():
    assert len(ENTRY_COMMANDS) >= 30 and len(SCRIPT_COMMANDS) >= 5


@pytest.mark.parametrize(
    ("where", "folder", "script", "arguments"), ENTRY_COMMANDS, ids=[c[0] for c in ENTRY_COMMANDS]
)
def test_each_entry_point_command_composes(where, folder, script, arguments):
    assert (ROOT / "src" / f"{script}.py").is_file(), f"{where}: no src/{script}.py"
    overrides = _overrides(arguments)
    try:
        compose_config(script, overrides)
    except Exception as error:  # Hydra's errors have many types; each says what did not compose
        pytest.fail(f"{where}: python src/{script}.py {arguments}\n  does not compose: {error}")


@pytest.fixture(scope="module")
def script_help() -> dict[str, str]:
    """Each documented script's --help, run once."""
    helps = {}
    for script in sorted({c[2] for c in SCRIPT_COMMANDS}):
        path = ROOT / "scripts" / f"{script}.py"
        if path.is_file():
            helps[script] = subprocess.run(
                [sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120
            ).stdout
    return helps


@pytest.mark.parametrize(
    ("where", "folder", "script", "arguments"), SCRIPT_COMMANDS, ids=[c[0] for c in SCRIPT_COMMANDS]
)
def test_each_script_command_names_a_script_and_its_flags(where, folder, script, arguments, script_help):
    assert script in script_help, f"{where}: no scripts/{script}.py"
    assert script_help[script].startswith("usage:"), f"{where}: scripts/{script}.py --help failed"
    for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", arguments):
        assert flag in script_help[script], f"{where}: scripts/{script}.py has no {flag}"


def test_a_renamed_key_is_caught():
    with pytest.raises(Exception, match=r"routing\.iteration"):
        compose_config("train", _overrides("routing.iteration=3"))


def test_the_python_example_classifies_with_a_real_checkpoint(trained_capsnet, capsys):
    (example,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    shown_path = re.search(r'load_classifier\("([^"]+)"\)', example).group(1)
    exec(example.replace(shown_path, str(trained_capsnet.last)), {})  # the README of this repository
    printed = capsys.readouterr().out
    assert re.fullmatch(r"tensor\(\[(\d, ){7}\d\]\)\n", printed), printed  # 8 classes, one per image
