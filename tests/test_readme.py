"""Checks that keep README.md true to the code: settings, CLI commands, reason codes, quickstart.

The README's tables are parsed as Markdown pipe tables and matched by their header row,
so a table can move within its section without breaking these tests.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from streams.cli import build_parser
from streams.settings import DEFAULT_SPACES, ENV_PREFIX, Settings, SpaceSettings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SOURCE_PACKAGES = ("streams", "encoders")

# The lane passes this reason to Rejection directly, so the constructor scan below misses it.
LANE_REASON = "encoder_failed"

# First argument of every InvalidEvent(...) or InputRejected(...) call, across line breaks.
REASON_CALL = re.compile(r'\b(?:InvalidEvent|InputRejected)\(\s*"([a-z0-9_]+)"')

FENCE = re.compile(r"^```(\S*)\s*$")
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
OUTPUT_LANGUAGE = "text"
QUICKSTART_COMMANDS = ["bash .ci/demo", "bash .ci/test"]

SETTINGS_HEADER = ["Setting", "Environment variable", "Default", "Description"]
SPACE_HEADER = ["Space key", "Default", "Description"]
REASON_HEADER = ["Reason", "Trigger"]

# Settings whose default is too large for a table cell. The README describes it in prose.
DEFAULTS_IN_PROSE = frozenset({"spaces"})


# Reading the README


def read_readme() -> str:
    assert README.is_file(), f"{README} is missing"
    return README.read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """Return the body of the ``## title`` section, up to the next level-2 heading."""
    lines = text.splitlines()
    heading = f"## {title}"
    if heading not in lines:
        raise AssertionError(f"README.md has no '{heading}' section")
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Return (info string, lines) of every fenced code block in ``text``."""
    blocks: list[tuple[str, list[str]]] = []
    language: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence is None:
            if language is not None:
                body.append(line)
            continue
        if language is None:
            language, body = fence.group(1), []
        else:
            blocks.append((language, body))
            language = None
    assert language is None, f"unclosed ``` {language} block"
    return blocks


def cell_text(cell: str) -> str:
    """Return a table cell without surrounding whitespace and backticks."""
    return cell.strip().strip("`")


def tables(text: str) -> list[list[list[str]]]:
    """Return every pipe table in ``text`` as rows of stripped cells, separator rows left out."""
    found: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


def table_rows(text: str, header: list[str]) -> dict[str, list[str]]:
    """Return the rows of the one table in ``text`` with ``header``, keyed by their first cell."""
    matching = [table for table in tables(text) if table[0] == header]
    assert len(matching) == 1, f"expected one table with header {header}, found {len(matching)}"
    rows: dict[str, list[str]] = {}
    for cells in matching[0][1:]:
        assert len(cells) == len(header), f"row {cells} has {len(cells)} cells, header has {len(header)}"
        key = cell_text(cells[0])
        assert key not in rows, f"{key!r} has two rows in the table with header {header}"
        rows[key] = cells
    return rows


def documented_default(value: object) -> str:
    """Return a default as the README writes it: JSON, strings unquoted, None as "unset"."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return json.dumps([str(item) for item in value])
    return repr(value)


# Reading the code


def source_reason_codes(package: str) -> set[str]:
    """Return the reason codes that the InvalidEvent and InputRejected calls in ``package`` pass."""
    codes: set[str] = set()
    for path in sorted((ROOT / package).glob("*.py")):
        codes.update(REASON_CALL.findall(path.read_text(encoding="utf-8")))
    return codes


def all_reason_codes() -> set[str]:
    codes = {LANE_REASON}
    for package in SOURCE_PACKAGES:
        codes |= source_reason_codes(package)
    return codes


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Return the subcommand parsers of ``embedstream``, by name."""
    # argparse has no public accessor for subparsers, so its _actions list is read.
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("build_parser() has no subcommands")


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [
        option
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    ]


def positional_choices(parser: argparse.ArgumentParser) -> list[str]:
    return [
        str(choice)
        for action in parser._actions
        if not action.option_strings and action.choices is not None
        for choice in action.choices
    ]


SETTING_NAMES = list(Settings.model_fields)
SPACE_KEYS = list(SpaceSettings.model_fields)
REASON_CODES = sorted(all_reason_codes())
COMMANDS = subcommands()


# Settings


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_settings_table_lists_field_with_variable(name: str) -> None:
    rows = table_rows(section(read_readme(), "Settings"), SETTINGS_HEADER)

    assert name in rows, f"setting {name!r} has no row in the README's settings table"
    assert cell_text(rows[name][1]) == f"{ENV_PREFIX}{name.upper()}"


@pytest.mark.parametrize("name", [name for name in SETTING_NAMES if name not in DEFAULTS_IN_PROSE])
def test_settings_table_default_matches_code(name: str) -> None:
    rows = table_rows(section(read_readme(), "Settings"), SETTINGS_HEADER)
    assert name in rows, f"setting {name!r} has no row in the README's settings table"

    expected = documented_default(Settings.model_fields[name].default)
    assert cell_text(rows[name][2]) == expected, f"README default of {name!r} differs from the code"


def test_settings_table_lists_no_unknown_field() -> None:
    rows = table_rows(section(read_readme(), "Settings"), SETTINGS_HEADER)

    unknown = sorted(set(rows) - set(SETTING_NAMES))
    assert not unknown, f"the settings table lists fields that Settings lacks: {unknown}"


def test_default_space_models_documented() -> None:
    settings_section = section(read_readme(), "Settings")

    for space in DEFAULT_SPACES:
        assert f"`{space.name}`" in settings_section, f"default space {space.name!r} is not named"
        assert f"`{space.model}`" in settings_section, f"model of default space {space.name!r} is not named"


@pytest.mark.parametrize("key", SPACE_KEYS)
def test_space_table_lists_key(key: str) -> None:
    rows = table_rows(section(read_readme(), "Settings"), SPACE_HEADER)

    assert key in rows, f"space key {key!r} has no row in the README's space table"


@pytest.mark.parametrize("key", SPACE_KEYS)
def test_space_table_default_matches_code(key: str) -> None:
    rows = table_rows(section(read_readme(), "Settings"), SPACE_HEADER)
    assert key in rows, f"space key {key!r} has no row in the README's space table"

    field = SpaceSettings.model_fields[key]
    expected = "required" if field.is_required() else documented_default(field.default)
    assert cell_text(rows[key][1]) == expected, f"README default of space key {key!r} differs from the code"


def test_space_table_lists_no_unknown_key() -> None:
    rows = table_rows(section(read_readme(), "Settings"), SPACE_HEADER)

    unknown = sorted(set(rows) - set(SPACE_KEYS))
    assert not unknown, f"the space table lists keys that SpaceSettings lacks: {unknown}"


# Command line


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_section_shows_command(command: str) -> None:
    cli_section = section(read_readme(), "Command line")

    assert f"embedstream {command}" in cli_section


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_section_mentions_options_and_choices(command: str) -> None:
    cli_section = section(read_readme(), "Command line")
    parser = COMMANDS[command]

    for option in option_strings(parser):
        mentioned = re.search(rf"(?<![\w-]){re.escape(option)}\b", cli_section)
        assert mentioned, f"option {option} of {command!r} is not in the README"
    for choice in positional_choices(parser):
        assert re.search(rf"\b{re.escape(choice)}\b", cli_section), f"{command} {choice} is not in the README"


@pytest.mark.parametrize("action", positional_choices(COMMANDS["dev"]))
def test_cli_section_shows_dev_action(action: str) -> None:
    cli_section = section(read_readme(), "Command line")

    assert f"embedstream dev {action}" in cli_section


# Rejection reasons


@pytest.mark.parametrize("package", SOURCE_PACKAGES)
def test_reason_scan_finds_codes(package: str) -> None:
    assert source_reason_codes(package), f"no InvalidEvent or InputRejected reason found in {package}/"


def test_lane_still_uses_encoder_failed() -> None:
    lane_source = (ROOT / "streams" / "lane.py").read_text(encoding="utf-8")

    assert f'"{LANE_REASON}"' in lane_source


@pytest.mark.parametrize("code", REASON_CODES)
def test_reason_table_lists_code(code: str) -> None:
    rows = table_rows(section(read_readme(), "Event schemas"), REASON_HEADER)

    assert code in rows, f"reason {code!r} has no row in the README's reason table"
    assert cell_text(rows[code][1]), f"reason {code!r} has no trigger"


def test_reason_table_lists_no_unknown_code() -> None:
    rows = table_rows(section(read_readme(), "Event schemas"), REASON_HEADER)

    unknown = sorted(set(rows) - set(REASON_CODES))
    assert not unknown, f"the reason table lists codes that the code never produces: {unknown}"


# Quickstart and CI


def test_quickstart_has_only_two_commands() -> None:
    quickstart = section(read_readme(), "Quickstart")

    commands = [
        line.strip().removeprefix("$ ")
        for language, lines in code_blocks(quickstart)
        if language in SHELL_LANGUAGES
        for line in lines
        if line.strip() and not line.strip().startswith("#")
    ]
    assert commands == QUICKSTART_COMMANDS


def test_quickstart_other_blocks_are_output() -> None:
    quickstart = section(read_readme(), "Quickstart")

    for language, lines in code_blocks(quickstart):
        allowed = language in SHELL_LANGUAGES or language == OUTPUT_LANGUAGE
        assert allowed, f"quickstart block ```{language} is neither a command nor output: {lines[:2]}"


@pytest.mark.parametrize("script", [".ci/demo", ".ci/test"])
def test_quickstart_script_exists(script: str) -> None:
    assert (ROOT / script).is_file()


def test_ci_run_calls_ci_test() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]

    calls = [
        line
        for line in commands
        if re.search(r"\bbash\b", line) and re.search(r'(?:\.ci/test|\)/test)"?(?:\s|$)', line)
    ]
    assert calls, f".ci/run has no command that runs .ci/test: {commands}"


def test_ci_test_runs_pytest() -> None:
    script = (ROOT / ".ci" / "test").read_text(encoding="utf-8")

    assert re.search(r"-m pytest\b", script), ".ci/test does not run pytest"
