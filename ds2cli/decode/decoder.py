"""Decoding as a library: find the checkpoint, LM and parameters; turn audio files or a manifest
into transcripts (JSON lines that `ds2cli score` reads).

Where the settings come from, later ones winning: DecodeConfig defaults, the recipe's [decode]
section (the recipe given, else the one stored in the checkpoint), tuned values in the
experiment's decode_params.json (if they were tuned for the same LM), explicit options."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ds2cli.decode.beam import Hypothesis, beam_search, greedy_search
from ds2cli.decode.config import DecodeConfig, LMConfig
from ds2cli.decode.edges import edge_pad_samples, pad_edges
from ds2cli.decode.lm import KenLM, check_fit, detect_level, load_lm
from ds2cli.decode.lm_scorer import Scorer, make_scorer
from ds2cli.decode.timing import token_spans
from ds2cli.errors import AudioError, DS2Error
from ds2cli.stages import ensure_lm, last_trained_checkpoint, trained_checkpoint
from ds2cli.text import WORD_MARK

PARAMS_FILE = "decode_params.json"


# -- where things are ---------------------------------------------------------------------------
def experiment_dir_of(checkpoint) -> Path:
    """exp/<recipe>/checkpoints/best.pt -> exp/<recipe>; any other file -> its folder."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def relative_to_experiment(exp_dir, path) -> str:
    """`path` as stored in the experiment's files: relative to exp_dir when inside it (so a moved
    or copied experiment still finds it), else absolute."""
    path, exp_dir = Path(path).resolve(), Path(exp_dir).resolve()
    return str(path.relative_to(exp_dir)) if path.is_relative_to(exp_dir) else str(path)


def read_tuned(exp_dir, lm_path) -> dict:
    """Tuned alpha/beta for this LM from exp_dir/decode_params.json, or {}."""
    p = Path(exp_dir) / PARAMS_FILE
    if not p.is_file():
        return {}
    try:
        tuned = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DS2Error(f"{p}: not valid JSON; delete it or tune again") from None
    if not isinstance(tuned, dict) or not isinstance(tuned.get("lm"), str) or lm_path is None:
        return {}
    stored = Path(exp_dir) / tuned["lm"]  # a relative path is the experiment's own
    return tuned if stored.resolve() == Path(lm_path).resolve() else {}


# -- results ------------------------------------------------------------------------------------
@dataclass
class Transcript:
    id: str
    text: str
    score: float
    duration: float = 0.0  # seconds of audio
    timing: list[dict] = field(default_factory=list)  # [{"word", "start", "end"}] in seconds
    nbest: list[dict] = field(default_factory=list)  # [{"text", "score"}] when nbest > 1
    greedy: str | None = None  # the greedy transcript, when asked for alongside the beam search

    def as_row(self) -> dict:
        row = {"id": self.id, "text": self.text, "score": round(self.score, 4),
               "duration": round(self.duration, 3), "timing": self.timing}
        if self.nbest:
            row["nbest"] = self.nbest
        return row


def hypothesis_text(tokens: list[int], tokenizer) -> str:
    text = tokenizer.decode(tokens)
    return " ".join(text.split()) if tokenizer.word_separator is not None else text.replace(" ", "")


def word_timing(tokens: list[int], spans: list[tuple[int, int]], tokenizer, frame_seconds: float) -> list[dict]:
    """Words with start/end times in seconds, from the (first, last + 1) frame span of each token."""
    sep = tokenizer.word_separator
    words, cur, start, end = [], "", 0, 0
    for tok, (first, stop) in zip(tokens, spans):
        unit = tokenizer.vocab[tok]
        new_word = sep is None or (sep == " " and unit == " ") or (sep == WORD_MARK and unit.startswith(WORD_MARK))
        if new_word and cur:
            words.append((cur, start, end))
            cur = ""
        piece = unit.replace(WORD_MARK, "") if sep == WORD_MARK else unit.strip()
        if piece:
            if not cur:
                start = first
            cur += piece
            end = stop
    if cur:
        words.append((cur, start, end))
    return [{"word": w, "start": round(s * frame_seconds, 3), "end": round(e * frame_seconds, 3)}
            for w, s, e in words]


# -- the decoder --------------------------------------------------------------------------------
class Decoder:
    """A recogniser plus a search strategy: greedy, or beam search with an optional LM."""

    def __init__(self, recognizer, config: DecodeConfig = DecodeConfig(), lm: KenLM | None = None,
                 lm_level: str | None = None, meta: dict | None = None):
        self.recognizer, self.tokenizer = recognizer, recognizer.tokenizer
        self.lm = lm
        self.level = None
        if lm is not None:
            self.level = lm_level or detect_level(lm, self.tokenizer)
            check_fit(lm, self.tokenizer, self.level)
        self.method = config.method if config.method != "auto" else ("beam" if lm is not None else "greedy")
        self.config = dataclasses.replace(config, method=self.method)
        self.scorer: Scorer = make_scorer(self.tokenizer, lm, self.level or "word", config.unk_offset,
                                           config.unk_char_offset)
        fc = recognizer.feature_config
        self.pad = edge_pad_samples(config.edge_pad_ms, recognizer.model.frontend.time_specs, fc.hop_ms,
                                    fc.sample_rate)
        self.meta = {**(meta or {}), "method": self.method, "lm": str(lm.path) if lm else None,
                     "lm_level": self.level, **self.config.to_dict()}

    def search(self, log_probs: np.ndarray) -> list[Hypothesis]:
        """log_probs (T, V) -> hypotheses, best first."""
        if self.method == "greedy":
            return [greedy_search(log_probs)]
        return beam_search(log_probs, self.scorer, self.config)

    def transcripts(self, ids: list[str], emissions: list, durations: list[float],
                    with_greedy: bool = False, lead_seconds: float = 0.0) -> list[Transcript]:
        """Search each utterance's emissions (T, V); word times are shifted back by `lead_seconds`
        (the quiet added before the audio) and kept within [0, duration]."""
        out = []
        for utt, em, dur in zip(ids, emissions, durations):
            lp = np.asarray(em, dtype=np.float32)
            hyps = self.search(lp)
            best = hyps[0]
            spans = token_spans(lp, best.tokens)
            timing = word_timing(best.tokens, spans, self.tokenizer, self.recognizer.frame_seconds)
            if lead_seconds:
                timing = [{**w, "start": round(min(max(0.0, w["start"] - lead_seconds), dur), 3),
                           "end": round(min(max(0.0, w["end"] - lead_seconds), dur), 3)} for w in timing]
            t = Transcript(utt, hypothesis_text(best.tokens, self.tokenizer), best.score, dur, timing)
            if self.config.nbest > 1:
                t.nbest = _unique_texts(hyps, self.tokenizer)
            if with_greedy:
                t.greedy = hypothesis_text(greedy_search(lp).tokens, self.tokenizer)
            out.append(t)
        return out

    def read(self, path, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
        """Audio at the model's rate; AudioError for audio too short to give one feature frame."""
        from ds2cli.audio import read_audio

        return self._long_enough(read_audio(path, self.recognizer.feature_config.sample_rate,
                                            offset or 0.0, duration), path)

    def read_rows(self, rows: list[dict]) -> tuple[list[np.ndarray], list[dict], list[tuple[str, str]]]:
        """Audio of manifest rows (their segment when they have an offset), with `self.pad` samples
        of quiet at each end: (waves, the rows read, (id, message) of each row that could not be
        read). A bad row never stops the others."""
        from ds2cli.manifest import read_row_audio

        waves, ok, errors = [], [], []
        for row in rows:
            try:
                wave = read_row_audio(row, self.recognizer.feature_config.sample_rate)
                wave = self._long_enough(wave, row["audio_filepath"])
                waves.append(pad_edges(wave, self.pad, self.recognizer.feature_config.sample_rate))
                ok.append(row)
            except DS2Error as err:
                errors.append((row["id"], str(err)))
        return waves, ok, errors

    def _long_enough(self, wave: np.ndarray, path) -> np.ndarray:
        cfg = self.recognizer.feature_config
        if len(wave) < cfg.n_fft:
            raise AudioError(f"{path}: audio too short ({len(wave)} samples at {cfg.sample_rate} Hz)")
        return wave

    def decode_files(self, paths: list[str], with_greedy: bool = False,
                     quiet: bool = True) -> tuple[list[Transcript], list[tuple[str, str]]]:
        """Transcripts of the readable files and (path, error) for the others."""
        rows = [{"id": str(p), "audio_filepath": str(p)} for p in paths]
        return self._decode_rows(rows, with_greedy, quiet, lambda t: None)

    def decode_manifest(self, manifest, out=None, with_meta: bool = False, quiet: bool = True) -> "ManifestReport":
        """Decode every row of a manifest into JSON lines (to `out`, or stdout if None); bad rows
        are skipped and reported. References, when the manifest has them, give WER/CER."""
        from ds2cli.manifest import read_manifest

        rows = read_manifest(manifest, require_text=False)
        start = time.perf_counter()
        with _output(out) as f:
            if with_meta:
                f.write(json.dumps({"_meta": {**self.meta, "manifest": str(manifest)}}, ensure_ascii=False) + "\n")
            done, errors = self._decode_rows(
                rows, True, quiet, lambda t: f.write(json.dumps(t.as_row(), ensure_ascii=False) + "\n"))
        report = ManifestReport(str(manifest), str(out) if out else None, len(rows), done, errors,
                                time.perf_counter() - start, self.tokenizer.language)
        report.score(rows)
        return report

    def _decode_rows(self, rows, with_greedy, quiet, emit):
        from ds2cli.progress import progress

        done, errors = [], []
        batch = max(1, self.config.batch_size)
        bar = progress(total=len(rows), desc="decoding", quiet=quiet, unit="utt")
        for i in range(0, len(rows), batch):
            waves, ok, bad = self.read_rows(rows[i:i + batch])
            errors += bad
            if waves:
                ems = self.recognizer.emissions(waves, batch_size=batch)
                rate = self.recognizer.feature_config.sample_rate
                durs = [(len(w) - 2 * self.pad) / rate for w in waves]
                for t in self.transcripts([r["id"] for r in ok], ems, durs, with_greedy, self.pad / rate):
                    emit(t)
                    done.append(t)
            bar.update(len(rows[i:i + batch]))
        bar.close()
        return done, errors


def _unique_texts(hyps: list[Hypothesis], tokenizer) -> list[dict]:
    seen, out = set(), []
    for h in hyps:
        text = hypothesis_text(h.tokens, tokenizer)
        if text not in seen:
            seen.add(text)
            out.append({"text": text, "score": round(h.score, 4)})
    return out


class _output:
    """Write to a file atomically, or to stdout."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        import sys

        from ds2cli.fileio import atomic_path

        if self.path is None:
            return sys.stdout
        self._ctx = atomic_path(self.path)
        self._file = open(self._ctx.__enter__(), "w", encoding="utf-8")
        return self._file

    def __exit__(self, *exc):
        if self.path is None:
            return False
        try:
            self._file.close()
        except OSError as err:  # the last buffer did not fit: atomic_path names the file
            if exc[0] is None:
                exc = (type(err), err, err.__traceback__)
        return self._ctx.__exit__(*exc)


@dataclass
class ManifestReport:
    manifest: str
    out: str | None
    rows: int
    transcripts: list[Transcript]
    errors: list[tuple[str, str]]  # (id, message) of skipped rows
    seconds: float
    language: str = "en"
    wer: float | None = None  # of the chosen decoder, when the manifest has references
    greedy_wer: float | None = None
    cer: float | None = None
    unscored: int = 0  # references without a transcript (skipped rows), scored as empty

    @property
    def audio_seconds(self) -> float:
        return sum(t.duration for t in self.transcripts)

    def score(self, rows: list[dict]) -> None:
        """WER/CER as `ds2cli score MANIFEST OUT` gives them (the same scorer): a skipped row
        counts as an empty hypothesis."""
        from ds2cli.metrics import score_texts

        refs = {r["id"]: r["text"] for r in rows if isinstance(r.get("text"), str)}
        if not refs or len(refs) < len(rows):
            return
        report = score_texts(refs, {t.id: t.text for t in self.transcripts})
        self.language = report.language
        self.wer, self.cer = report.score.wer.rate, report.score.cer.rate
        self.unscored = len(report.missing_hypotheses)
        if all(t.greedy is not None for t in self.transcripts):
            self.greedy_wer = score_texts(refs, {t.id: t.greedy for t in self.transcripts}).score.wer.rate

    def summary(self) -> str:
        rtf = self.seconds / self.audio_seconds if self.audio_seconds else 0.0
        line = (f"decoded {len(self.transcripts)} of {self.rows} utterances "
                f"({self.audio_seconds:.1f} s of audio) in {self.seconds:.1f} s, RTF {rtf:.3f}")
        if self.errors:
            line += f"; skipped {len(self.errors)} bad row(s)"
        if self.wer is not None:
            unit = "CER" if self.language == "zh" else "WER"
            line += f"; {unit} {100 * self.wer:.2f}%"
            if self.greedy_wer is not None:
                line += f" (greedy {100 * self.greedy_wer:.2f}%)"
            if self.unscored:
                line += f", the {self.unscored} skipped row(s) scored as empty"
        return line

    def as_dict(self) -> dict:
        return {"manifest": self.manifest, "out": self.out, "rows": self.rows,
                "decoded": len(self.transcripts), "skipped": [{"id": i, "error": e} for i, e in self.errors],
                "seconds": round(self.seconds, 3), "audio_seconds": round(self.audio_seconds, 3),
                "wer": self.wer, "cer": self.cer, "greedy_wer": self.greedy_wer}


# -- putting it together ------------------------------------------------------------------------
def load_recognizer(checkpoint, device: str = "cpu", precision: str = "fp32"):
    """(Recognizer, the recipe stored in the checkpoint)."""
    from ds2cli.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    return _recognizer(ckpt, checkpoint, device, precision), ckpt.get("recipe") or {}


def _recognizer(ckpt: dict, path, device: str, precision: str):
    from ds2cli.checkpoint import model_from_checkpoint
    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.inference import Recognizer
    from ds2cli.text import tokenizer_from_dict

    try:
        return Recognizer(model_from_checkpoint(ckpt), tokenizer_from_dict(ckpt["tokenizer"]),
                          FeatureConfig.from_dict(ckpt["feature_config"]),
                          FeatureStats.from_dict(ckpt["feature_stats"]), device, precision, str(path))
    except (KeyError, TypeError, RuntimeError) as err:
        raise DS2Error(f"{path}: damaged ds2cli checkpoint ({type(err).__name__}: "
                       f"{str(err).splitlines()[0][:120]})") from None
    except ValueError as err:
        raise DS2Error(f"{path}: {err}") from None


def _find_lm(spec: dict, exp_dir: Path, language: str, lm: str | None, no_lm: bool, lm_level: str | None,
             build: bool, method: str) -> KenLM | None:
    """--lm, else the experiment's LM (exp_dir/lm/lm.bin, built from exp_dir/lm_text.txt if
    absent), else none. When the recipe (or the checkpoint's) has an [lm] section and the search
    would use it, a missing LM is an error: the method never changes without saying so."""
    from ds2cli.recipe import section

    if no_lm:
        return None
    if lm:
        return load_lm(lm, lm_level)
    lm_cfg = section(spec, "lm", LMConfig) if spec.get("lm") else LMConfig()
    if not lm_cfg.enabled:
        return None
    built = ensure_lm(exp_dir, lm_cfg, language, build)
    if built is not None:
        return load_lm(built, lm_level)
    if spec.get("lm") and method != "greedy":
        raise DS2Error(f"{exp_dir / 'lm' / 'lm.bin'}: the language model of recipe {spec.get('name', '?')} is missing (and "
                       f"{exp_dir / 'lm_text.txt'} to build it); give --exp-dir (the experiment), "
                       "--lm FILE, or --no-lm to decode without one")
    return None


def _stored_recipe(ckpt: dict, checkpoint, overrides) -> dict:
    from ds2cli.recipe import apply_overrides, check_sections

    spec = dict(ckpt.get("recipe") or {})
    spec.setdefault("_path", f"{checkpoint} (its recipe)")
    if overrides:
        spec = apply_overrides(spec, list(overrides))
        check_sections(spec, "--set")
    return spec


def load_decoder(checkpoint=None, *, recipe: str | None = None, overrides: list[str] = (),
                 exp_dir=None, lm: str | None = None, no_lm: bool = False, lm_level: str | None = None,
                 device: str = "cpu", options: dict | None = None, build_lm: bool = True) -> Decoder:
    """Everything `ds2cli decode` needs. `exp_dir` is the experiment (its checkpoints/best.pt, LM
    and tuned values; default exp/<recipe>, else the checkpoint's folder, else the last trained
    one). `options` are explicit DecodeConfig values (None = unset)."""
    from ds2cli.checkpoint import load_checkpoint
    from ds2cli.recipe import experiment_dir, load_recipe, section

    spec = load_recipe(recipe, list(overrides)) if recipe else None
    if exp_dir is None and spec:
        exp_dir = experiment_dir(spec)
    if checkpoint is None:
        checkpoint = trained_checkpoint(exp_dir) if exp_dir else last_trained_checkpoint()
    exp_dir = Path(exp_dir) if exp_dir else experiment_dir_of(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    if spec is None:  # the recipe the checkpoint was trained with, --set applied as to any recipe
        spec = _stored_recipe(ckpt, checkpoint, overrides)
    config = section(spec, "decode", DecodeConfig) if spec.get("decode") else DecodeConfig()
    origin = "recipe" if {"alpha", "beta"} & set(spec.get("decode", {})) else "default"
    language = ckpt.get("tokenizer", {}).get("language", "en")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    lm_obj = _find_lm(spec, exp_dir, language, lm, no_lm, lm_level, build_lm,
                      options.get("method") or config.method)
    tuned = read_tuned(exp_dir, lm_obj.path if lm_obj else None)
    if {"alpha", "beta"} & set(tuned):
        config = dataclasses.replace(config, **{k: float(tuned[k]) for k in ("alpha", "beta") if k in tuned})
        origin = f"tuned ({exp_dir / PARAMS_FILE})"
    try:
        config = dataclasses.replace(config, **options)
    except (TypeError, ValueError) as err:
        raise DS2Error(f"decode options: {err}") from None
    if {"alpha", "beta"} & set(options):
        origin = "options"
    recognizer = _recognizer(ckpt, checkpoint, device, config.precision)
    meta = {"checkpoint": str(checkpoint), "experiment": str(exp_dir), "device": device,
            "alpha_beta_from": origin}
    if lm_obj is not None:
        from ds2cli.decode.lm_build import describe

        meta["lm_info"] = describe(lm_obj.path)
    return Decoder(recognizer, config, lm_obj, lm_level, meta)
