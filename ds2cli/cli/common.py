"""Helpers shared by the commands: error reporting, progress bars, JSON output."""
from __future__ import annotations

import functools
import json
import os

import click

from ds2cli.errors import DS2Error


def user_errors(func):
    """Turn a library DS2Error into a one-line `Error: ...` and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DS2Error as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:  # the library names its outputs; this is the last net
            reason = os.strerror(err.errno).lower() if err.errno else str(err)
            raise click.ClickException(f"{err.filename}: {reason}" if err.filename else reason) from None

    return wrapper


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
