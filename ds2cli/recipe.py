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

SECTIONS = ("data", "features", "model", "train", "augment", "lm", "decode")  # tables a recipe may have
TOP_LEVEL = ("name", "description", "_path", "_set")  # plain values a recipe may have


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
    check_sections(recipe, str(path))
    recipe = apply_overrides(recipe, overrides)
    check_sections(recipe, "--set")
    return recipe


def check_sections(recipe: dict, where: str) -> None:
    """An unknown section (a typo such as [trian]) is an error, as unknown keys are."""
    unknown = sorted(set(recipe) - set(SECTIONS) - set(TOP_LEVEL))
    if unknown:
        raise RecipeError(f"{where}: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    for name in SECTIONS:
        if name in recipe and not isinstance(recipe[name], list if name == "augment" else dict):
            raise RecipeError(f"{where}: {name} must be a {'list of tables' if name == 'augment' else 'table'}, "
                              f"not {recipe[name]!r}")
    if not isinstance(recipe.get("name", ""), str):
        raise RecipeError(f"{where}: name must be a string, not {recipe['name']!r}")


def apply_overrides(recipe: dict, overrides: list[str], sections: bool = True) -> dict:
    """Apply `section.key=value` overrides (TOML values; a bare word is a string) and note them
    in recipe["_set"] so an error can name them. With sections=False, plain `key=value` options."""
    recipe = copy.deepcopy(recipe)
    flag = "--set" if sections else "--option"
    for item in overrides:
        key, sep, raw = item.partition("=")
        *parents, leaf = key.strip().split(".")
        if not sep or not key.strip() or (sections and not (parents or leaf in TOP_LEVEL[:2])):
            raise RecipeError(f"{flag} {item!r}: expected " +
                              ("SECTION.KEY=VALUE, e.g. train.epochs=5" if sections else "KEY=VALUE"))
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: take it as a string
        if sections:
            recipe.setdefault("_set", {}).setdefault(parents[0] if parents else leaf, []).append(item)
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"{flag} {item!r}: {part!r} is not a section")
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
    if name in recipe.get("_set", {}):
        where += " with --set " + " --set ".join(recipe["_set"][name])
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) in [{name}]: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: bad value in [{name}]: {err}") from None


def experiment_dir(recipe: dict, exp_root="exp") -> Path:
    return Path(exp_root) / recipe["name"]
