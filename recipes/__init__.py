"""The recipes that ship with ds2cli (installed as the package data of `ds2cli.recipes`)."""
