"""`ds2cli recipes`: the recipes `--recipe NAME` finds (./recipes, then the packaged ones)."""
from __future__ import annotations

import click

from ds2cli.cli.common import echo_json, json_option, user_errors


@click.command(short_help="List the recipes that --recipe NAME finds.")
@json_option
@user_errors
def recipes(as_json):
    """List every recipe by name with its one-line description: those in ./recipes first, then
    the ones that ship with ds2cli. `ds2cli train --recipe NAME` takes a name or a .toml path."""
    from ds2cli.recipe import describe_recipe, list_recipes

    found = {name: {"path": str(path), "description": describe_recipe(path)}
             for name, path in list_recipes().items()}
    if as_json:
        echo_json(found)
        return
    width = max((len(name) for name in found), default=0)
    for name, row in found.items():
        click.echo(f"{name:<{width}}  {row['description']}")
