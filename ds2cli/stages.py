"""Stage chaining, in one place: what a command needs from an earlier stage of the same
experiment, made when it is missing. `train` prepares the recipe's data; `decode` (and `stream`,
`serve`) builds the recipe's LM from the training text; `decode` and `align` find the trained
model. Each stage says what it runs, and a stage that cannot run names what is missing."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ds2cli.errors import DS2Error


def ensure_prepared(recipe: dict, exp_dir, *, data_dir: str | None = None, quiet: bool = True,
                    log: Callable[[str], None] = lambda msg: None) -> bool:
    """Prepare the recipe's data into exp_dir unless it is there already; True when it ran."""
    from ds2cli.data_prep.common import corpus_folder, is_prepared, prepare_recipe

    if is_prepared(exp_dir):
        return False
    corpus_folder(recipe, data_dir)  # the one-line error before anything is said or made
    log(f"preparing {exp_dir} (recipe {recipe.get('name')})")
    prepare_recipe(recipe, exp_dir, data_dir=data_dir, quiet=quiet)
    return True


def ensure_lm(exp_dir, lm_config, language: str, build: bool = True) -> Path | None:
    """The experiment's LM, exp_dir/lm/lm.bin: built from exp_dir/lm_text.txt when absent (or
    built from other text or settings; `build` False: never built). None when there is none."""
    exp_dir = Path(exp_dir)
    built = exp_dir / "lm" / "lm.bin"
    if build and (exp_dir / "lm_text.txt").is_file():
        from ds2cli.decode.lm_build import recipe_lm

        built = Path(recipe_lm(exp_dir, lm_config, language=language).binary)
    return built if built.is_file() else None


def trained_checkpoint(exp_dir) -> Path:
    """exp_dir/checkpoints/best.pt, or a DS2Error saying to train first."""
    ckpt = Path(exp_dir) / "checkpoints" / "best.pt"
    if not ckpt.is_file():
        raise DS2Error(f"{ckpt}: no such checkpoint; train the recipe first or pass --checkpoint")
    return ckpt


def last_trained_checkpoint(exp_root="exp") -> Path:
    """The best checkpoint of the experiment that `ds2cli train` wrote last (named by exp/LAST)."""
    from ds2cli.trainer import read_last

    exp_dir = read_last(exp_root)
    if exp_dir is None:
        raise DS2Error(f"{Path(exp_root) / 'LAST'}: no trained model found; train one "
                       f"(ds2cli train --recipe NAME) or pass --checkpoint")
    ckpt = exp_dir / "checkpoints" / "best.pt"
    if not ckpt.is_file():
        raise DS2Error(f"{ckpt}: no such checkpoint (the last trained experiment, named by "
                       f"{Path(exp_root) / 'LAST'}); finish training or pass --checkpoint")
    return ckpt
