"""The `ds2cli` command group. Subcommands live in their own modules and are imported lazily,
so `ds2cli --help` stays fast (no torch import)."""
import importlib

import click

# name -> (module, attribute, short help)
COMMANDS = {
    "prepare": ("ds2cli.cli.cmd_prepare", "prepare", "Turn a corpus on disk into manifests, alphabet and feature stats."),
    "align": ("ds2cli.cli.cmd_align", "align", "CTC forced alignment, timestamps and filtering of bad transcripts."),
    "augment": ("ds2cli.cli.cmd_augment", "augment", "Write noise/speed-augmented copies of a manifest's audio."),
    "recipes": ("ds2cli.cli.cmd_recipes", "recipes", "List the recipes that --recipe NAME finds."),
    "train": ("ds2cli.cli.cmd_train", "train", "Train a Deep Speech 2 model from a recipe."),
    "average": ("ds2cli.cli.cmd_average", "average", "Average the last or best K epoch checkpoints into one."),
    "decode": ("ds2cli.cli.cmd_decode", "decode", "Transcribe audio files or a manifest (greedy or KenLM beam search)."),
    "stream": ("ds2cli.cli.cmd_stream", "stream", "Recognise audio files chunk by chunk with a streaming model."),
    "serve": ("ds2cli.cli.cmd_serve", "serve", "Serve streaming recognition over WebSocket/HTTP (Batch Dispatch)."),
    "score": ("ds2cli.cli.cmd_score", "score", "WER/CER of hypotheses against references."),
    "lm": ("ds2cli.cli.cmd_lm", "lm", "Build KenLM language models."),
    "ntm": ("ds2cli.cli.cmd_ntm", "ntm", "Neural Turing Machines on the paper's algorithmic tasks."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module)]

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as err:
            if err.name == module:
                return None
            raise

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ds2cli")
def main():
    """ds2cli: train and evaluate Deep Speech 2 speech recognisers from the command line.

    \b
    Typical use:
      ds2cli train --recipe tiny          # prepares the embedded corpus first
      ds2cli decode audio.wav             # best checkpoint of the last trained recipe
      ds2cli score ref.jsonl hyp.jsonl
    """
