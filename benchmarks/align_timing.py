"""Word-boundary accuracy of `ds2cli align` on spliced FSDD digit strings, where every digit's true
start and end are known from the splice. Target: median word-boundary error <= 40 ms.

The constant shifts added to CTC spike times are fitted on strings from FSDD's train takes and
measured on strings from its test takes (0-4), which the model never heard. Both boundary modes
are measured: 'spikes' (spike times + constant shifts) and 'pauses' (the default: edges next to a
silent pause moved to the pause's edges).

    python -m benchmarks.align_timing [--checkpoint PATH]

Writes benchmarks/results/align_timing.json."""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.align_common import digits_manifest, find_checkpoint, word_truth, write_result
from benchmarks.paths import shown


def boundary_offsets(manifest, recognizer, snap: bool, start_shift: float, end_shift: float):
    """(start offsets, end offsets) in seconds, predicted - true, over all words."""
    from ds2cli.align.aligner import align_manifest
    from ds2cli.align.forced import Boundaries
    from ds2cli.manifest import read_manifest

    truth = word_truth(manifest)
    run = align_manifest(read_manifest(manifest), recognizer, boundaries=Boundaries(start_shift, end_shift, snap))
    starts, ends, mismatched = [], [], 0
    for a in run.alignments:
        words = truth[a.id]
        if not a.ok or [w.word for w in a.words] != [w["word"] for w in words]:
            mismatched += 1
            continue
        starts += [got.start - want["start"] for got, want in zip(a.words, words)]
        ends += [got.end - want["end"] for got, want in zip(a.words, words)]
    return np.array(starts), np.array(ends), mismatched, run


def summary(starts: np.ndarray, ends: np.ndarray) -> dict:
    both = np.abs(np.concatenate([starts, ends]))
    return {"median_abs_error_ms": round(1000 * float(np.median(both)), 1),
            "mean_abs_error_ms": round(1000 * float(both.mean()), 1),
            "p90_abs_error_ms": round(1000 * float(np.percentile(both, 90)), 1),
            "start_median_abs_ms": round(1000 * float(np.median(np.abs(starts))), 1),
            "end_median_abs_ms": round(1000 * float(np.median(np.abs(ends))), 1),
            "start_bias_ms": round(1000 * float(np.median(starts)), 1),
            "end_bias_ms": round(1000 * float(np.median(ends)), 1),
            "within_20ms": round(float((both <= 0.02).mean()), 3),
            "within_50ms": round(float((both <= 0.05).mean()), 3),
            "boundaries": int(both.size)}


def main(argv=None):
    import torch

    from ds2cli.align.forced import END_SHIFT, START_SHIFT
    from ds2cli.inference import Recognizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="digits model  [default: exp/digits, else trained here]")
    parser.add_argument("--utterances", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    path, provenance = find_checkpoint("digits", args.checkpoint)
    recognizer = Recognizer.from_checkpoint(path)
    calibration = digits_manifest("train", args.utterances, seed=21)
    test = digits_manifest("test", args.utterances, seed=22)

    # raw spike times (no shift) on the calibration strings -> the constant shifts for this model
    starts, ends, _, _ = boundary_offsets(calibration, recognizer, False, 0.0, 0.0)
    fitted = (-float(np.median(starts)), -float(np.median(ends)))
    result = {"model": provenance, "frame_seconds": recognizer.frame_seconds,
              "calibration": {"manifest": shown(calibration), "raw_spikes": summary(starts, ends),
                              "fitted_start_shift": round(fitted[0], 3), "fitted_end_shift": round(fitted[1], 3)},
              "code_shifts": {"start": START_SHIFT, "end": END_SHIFT}, "test": {"manifest": shown(test)}}
    for name, snap, shifts in [("raw_spikes", False, (0.0, 0.0)), ("spikes", False, (START_SHIFT, END_SHIFT)),
                               ("spikes_fitted_shifts", False, fitted), ("pauses", True, (START_SHIFT, END_SHIFT))]:
        s, e, mismatched, run = boundary_offsets(test, recognizer, snap, *shifts)
        result["test"][name] = {**summary(s, e), "shifts": [round(x, 3) for x in shifts],
                                "utterances_with_wrong_words": mismatched}
        print(name, result["test"][name], flush=True)
    result["test"]["utterances"] = len(run.alignments)
    result["target_met"] = result["test"]["pauses"]["median_abs_error_ms"] <= 40
    print("->", write_result("align_timing", result))


if __name__ == "__main__":
    main()
