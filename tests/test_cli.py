"""The command line: help for every command reads well, and errors are one line with exit != 0."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ds2cli.cli import COMMANDS, main


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and len(result.output.splitlines()) > 5


def test_python_dash_m_works_and_help_is_fast():
    out = subprocess.run([sys.executable, "-m", "ds2cli", "--help"], capture_output=True, text=True, check=True)
    assert "prepare" in out.stdout
    # `ds2cli --help` must not import torch (it takes seconds)
    code = "import sys, ds2cli.cli; from click.testing import CliRunner; CliRunner().invoke(ds2cli.cli.main, ['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_recipe_is_a_one_line_error():
    result = CliRunner().invoke(main, ["prepare", "--recipe", "no-such-recipe"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: unknown recipe 'no-such-recipe'")
    assert len(result.output.strip().splitlines()) == 1
