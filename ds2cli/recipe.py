"""Recipes: one TOML file per experiment (recipes/NAME.toml) with sections [data], [features],
[model], [train], [[augment]], [lm], [decode]. Sections load into the owning module's dataclass,
which rejects unknown keys. Command-line overrides use `section.key=value` with TOML values:
`--set train.epochs=5 --set model.rnn_hidden=512 --set 'decode.alpha=0.8'`."""
from __future__ import annotations

import copy
import dataclasses
import importlib.resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ds2cli.errors import RecipeError

def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: ./recipes first (a user's own), then the recipes that ship
    with ds2cli (the `ds2cli.recipes` package: an installed ds2cli is a plain folder on disk)."""
    return [Path.cwd() / "recipes", Path(str(importlib.resources.files("ds2cli.recipes")))]


def find_recipe(name_or_path: str) -> Path:
    """A path to a .toml file, or the name of a recipe in ./recipes or the packaged recipes."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise RecipeError(f"{path}: no such recipe file")
        return path
    for folder in recipe_dirs():
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = sorted(list_recipes())
    raise RecipeError(f"unknown recipe {name_or_path!r}; known recipes: {', '.join(known) or 'none'}")


def list_recipes() -> dict[str, Path]:
    """name -> file of every recipe found by name (./recipes shadows a packaged one)."""
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def describe_recipe(path: Path) -> str:
    """The recipe's `description` (one line), or '' when it has none or is not valid TOML."""
    try:
        return str(tomllib.loads(path.read_text(encoding="utf-8")).get("description", ""))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return ""


def load_recipe(name_or_path: str, overrides: list[str] = ()) -> dict:
    """Read a recipe and apply `section.key=value` overrides. Adds `name` (the file stem) if absent."""
    path = find_recipe(name_or_path)
    try:
        recipe = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: not valid TOML ({err})") from None
    recipe.setdefault("name", path.stem)
    recipe["_path"] = str(path)
    return apply_overrides(recipe, overrides)


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    recipe = copy.deepcopy(recipe)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r}: expected section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: take it as a string
        *parents, leaf = key.strip().split(".")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = value
    return recipe


def section(recipe: dict, name: str, cls):
    """Build dataclass `cls` from recipe[name]; unknown keys are a RecipeError naming them."""
    values = recipe.get(name, {})
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    where = recipe.get("_path", recipe.get("name", "recipe"))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) in [{name}]: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: bad value in [{name}]: {err}") from None


def experiment_dir(recipe: dict, exp_root="exp") -> Path:
    return Path(exp_root) / recipe["name"]
