#!/usr/bin/env bash
# `make demo`: the main job on the embedded default corpus, end to end. `ds2cli train` prepares the
# synthetic corpus first; then the test split is decoded greedily and with the recipe's word LM
# (built from the training text), and both are scored.
set -euo pipefail
ds2=${1:-ds2cli}
exp=${2:-exp}
dir="$exp/tiny"
test_set="$dir/manifests/test.jsonl"

"$ds2" train --recipe tiny --exp-dir "$dir"
mkdir -p "$dir/decode"
"$ds2" decode --recipe tiny --exp "$exp" --method greedy --manifest "$test_set" --out "$dir/decode/test.greedy.jsonl"
"$ds2" decode --recipe tiny --exp "$exp" --manifest "$test_set" --out "$dir/decode/test.lm.jsonl"
echo
echo "== tiny test split, greedy"
"$ds2" score "$dir/decode/test.greedy.jsonl" "$test_set"
echo
echo "== tiny test split, KenLM beam search"
"$ds2" score "$dir/decode/test.lm.jsonl" "$test_set"
