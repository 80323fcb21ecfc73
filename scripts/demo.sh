#!/usr/bin/env bash
# `make demo`: the main job on the embedded default corpus, end to end, with the streaming model
# (recipe tiny-stream: forward-only GRU layers + lookahead). `ds2cli train` prepares the synthetic
# corpus first; the test split is decoded greedily and with the recipe's word LM (built from the
# training text) and scored; a few test files are recognised chunk by chunk with `ds2cli stream`;
# last, the streaming model's WER is shown next to the bidirectional tiny recipe's, recorded in
# benchmarks/results/stream_accuracy.json (training both would not fit the demo's 15 minutes).
set -euo pipefail
ds2=${1:-ds2cli}
exp=${2:-exp}
py=${3:-python3}
recipe=tiny-stream
dir="$exp/$recipe"
test_set="$dir/manifests/test.jsonl"

"$ds2" train --recipe "$recipe" --exp-dir "$dir"
mkdir -p "$dir/decode"
"$ds2" decode --recipe "$recipe" --exp-dir "$dir" --method greedy --manifest "$test_set" --out "$dir/decode/test.greedy.jsonl"
"$ds2" decode --recipe "$recipe" --exp-dir "$dir" --manifest "$test_set" --out "$dir/decode/test.lm.jsonl"
echo
echo "== $recipe test split, greedy"
"$ds2" score "$test_set" "$dir/decode/test.greedy.jsonl"
echo
echo "== $recipe test split, KenLM beam search"
"$ds2" score "$test_set" "$dir/decode/test.lm.jsonl"
echo
echo "== ds2cli stream: three test files in 160 ms chunks (KenLM beam search)"
files=$("$py" -c 'import json, sys; [print(json.loads(l)["audio_filepath"]) for l in list(open(sys.argv[1]))[:3]]' "$test_set")
# shellcheck disable=SC2086
"$ds2" stream --recipe "$recipe" --exp-dir "$dir" $files
echo
echo "== streaming model next to the bidirectional one (same test split)"
"$py" -m benchmarks.stream_accuracy --demo "$dir/decode/test.greedy.jsonl" "$dir/decode/test.lm.jsonl" \
    --manifest "$test_set" --out "$dir/decode/stream_vs_bidirectional.json"
