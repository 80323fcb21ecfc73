"""The embedded default corpus: sentences from a built-in grammar (data_prep.synth_sentences)
spoken by espeak-ng (the optional `synth` extra, package `espeakng-loader`), made offline.

Voices are espeak's English accents (or Mandarin `cmn`) combined with its voice variants
(`+m3`, `+f2`, `+klatt`, ... in espeak-ng-data/voices/!v), at a random speaking rate, pitch
and pitch range. The dev and test splits are held out twice over: their variants
(DEV_VARIANTS, TEST_VARIANTS) are never used in train, so no voice of theirs is heard in
training, and their sentences never occur in train (nor in each other). Accents are shared.

Options: num_train (2000), num_dev (200), num_test (200), lang ("en" or "zh").
Audio: work_dir/audio/synth-<lang>/<split>/<id>_<hash>.wav, 16 kHz 16-bit. The hash covers
everything that shapes the audio, so files from another seed are never reused by mistake and
a re-run only makes what is missing. The audio is a function of the seed alone (byte for byte,
whatever `jobs`): see the synthesis section below."""
from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ds2cli.data_prep.common import Collected, Item, Skip
from ds2cli.data_prep.synth_sentences import generator
from ds2cli.audio import SAMPLE_RATE, audio_info, resample, write_audio
from ds2cli.errors import AudioError, DS2Error

LANGUAGE = "en"  # the default; `lang="zh"` makes a Mandarin corpus

ACCENTS = {
    # espeak-ng English voices (espeak-ng-data/lang/gmw); en-Shaw is the Shavian script, not an accent
    "en": ["en", "en-us", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc"],
    "zh": ["cmn"],
}
# Held-out variants (fixed, not drawn from the seed, so every seed is scored on the same voices);
# a mix of male, female, klatt-synthesiser and character voices.
TEST_VARIANTS = ("m4", "f2", "klatt3", "Andy", "belinda", "iven2", "robert", "steph2", "caleb",
                 "grandma", "edward2", "robosoft4")
DEV_VARIANTS = ("m6", "f4", "klatt2", "Annie", "linda", "norbert", "quincy", "iven3", "michel",
                "robosoft5")
# Left out: espeak-ng 1.52 segfaults on some Mandarin sentences with this variant (a crash that
# slips through anyway costs one utterance: see Espeak.speak_isolated).
EXCLUDED_VARIANTS = ("Demonic",)
RATE_WPM = (130, 210)  # espeak speaking rate, words per minute (its default is 175)
PITCH = (30, 70)  # espeak base pitch 0-100 (default 50)
PITCH_RANGE = (30, 80)  # espeak intonation range 0-100 (default 50)
PAD_S = (0.05, 0.3)  # silence before and after the speech
PEAK = (0.25, 0.9)  # espeak's level varies a lot by variant (some clip): normalise the peak
NOISE_STD = (1e-4, 2e-3)  # a little white noise, so silence is not digital zero
MAX_ATTEMPTS_PER_SENTENCE = 50

# espeak-ng API constants (speak_lib.h)
AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_RATE, ESPEAK_PITCH, ESPEAK_RANGE = 1, 3, 4
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
EE_OK = 0
SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.c_void_p)


@dataclass(frozen=True)
class Utterance:
    """Everything that determines one synthetic recording."""

    text: str
    voice: str  # "<accent>+<variant>", as espeak_SetVoiceByName takes it
    rate: int
    pitch: int
    pitch_range: int
    lead_s: float
    trail_s: float
    peak: float
    noise_std: float
    noise_seed: int

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def collect(corpus_dir: Path | None, work_dir: Path, *, jobs: int = 1, seed: int = 0,
            num_train: int = 2000, num_dev: int = 200, num_test: int = 200,
            lang: str = LANGUAGE, quiet: bool = False, **unknown) -> Collected:
    """Plan the corpus from `seed`, synthesise what is not on disk yet (in `jobs` processes)
    and return its items. `corpus_dir` is unused (the corpus is made, not read); `quiet` hides
    the progress bar."""
    if unknown:
        raise DS2Error(f"synth: unknown option(s) {', '.join(sorted(unknown))} "
                       "(expected num_train, num_dev, num_test, lang)")
    sizes = {"train": _count("num_train", num_train), "dev": _count("num_dev", num_dev),
             "test": _count("num_test", num_test)}
    if lang not in ACCENTS:
        raise DS2Error(f"synth: unknown lang {lang!r} (expected 'en' or 'zh')")
    data_path = _espeak_paths()[1]
    variants = _variants(data_path)
    plan = plan_corpus(sizes, lang, seed, variants)

    audio_dir = Path(work_dir) / "audio" / f"synth-{lang}"
    splits: dict[str, list[Item]] = {}
    todo: list[tuple[str, Utterance]] = []
    for split, utterances in plan.items():
        splits[split] = []
        for i, utt in enumerate(utterances):
            uid = f"synth-{lang}-{split}-{i:05d}"
            path = audio_dir / split / f"{uid}_{utt.digest()}.wav"
            splits[split].append(Item(str(path), utt.text, uid, speaker=utt.voice))
            if not _complete(path):
                todo.append((str(path), utt))

    skipped = _synthesise(todo, jobs, lang, quiet)
    bad = {s.path for s in skipped}
    splits = {name: [it for it in items if it.audio_filepath not in bad] for name, items in splits.items()}
    return Collected(splits=splits, skipped=skipped, language=lang)


def plan_corpus(sizes: dict[str, int], lang: str, seed: int,
                variants: list[str]) -> dict[str, list[Utterance]]:
    """Draw every utterance's sentence, voice and prosody, each split from its own generator
    seeded by (seed, split), so that e.g. the test split does not change with num_train.
    Sentences are unique across the whole corpus; dev and test variants are held out of train.
    English draws test, dev, then train (train skips held-out sentences). Mandarin draws train
    first: its dev/test sentences use only characters that occur in train (the alphabet is
    built from the training text), so there they can still shift with the training set."""
    make = generator(lang)
    held_out = {"test": [v for v in TEST_VARIANTS if v in variants],
                "dev": [v for v in DEV_VARIANTS if v in variants]}
    held_out["train"] = [v for v in variants if v not in TEST_VARIANTS and v not in DEV_VARIANTS]
    seen: set[str] = set()
    train_chars: set[str] = set()
    plan: dict[str, list[Utterance]] = {}
    for split in ("train", "dev", "test") if lang == "zh" else ("test", "dev", "train"):
        rng = random.Random(f"{seed}-{split}")
        utterances = []
        for _ in range(sizes[split]):
            text = _new_sentence(rng, make, seen, train_chars if lang == "zh" and split != "train" else None)
            if split == "train":
                train_chars.update(text)
            voice = f"{rng.choice(ACCENTS[lang])}+{rng.choice(held_out[split])}"
            utterances.append(Utterance(
                text=text, voice=voice, rate=rng.randint(*RATE_WPM), pitch=rng.randint(*PITCH),
                pitch_range=rng.randint(*PITCH_RANGE), lead_s=round(rng.uniform(*PAD_S), 3),
                trail_s=round(rng.uniform(*PAD_S), 3), peak=round(rng.uniform(*PEAK), 3),
                noise_std=round(rng.uniform(*NOISE_STD), 5), noise_seed=rng.getrandbits(32)))
        plan[split] = utterances
    return {split: plan[split] for split in ("train", "dev", "test")}


def _new_sentence(rng: random.Random, make, seen: set[str], alphabet: set[str] | None) -> str:
    for _ in range(MAX_ATTEMPTS_PER_SENTENCE):
        text = make(rng)
        if text not in seen and (alphabet is None or set(text) <= alphabet):
            seen.add(text)
            return text
    raise DS2Error(f"synth: the sentence grammar ran out of new sentences after {len(seen)}; "
                   "ask for fewer utterances")


def _count(name: str, value) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise DS2Error(f"synth: {name} must be a whole number, got {value!r}") from None
    if n < 0:
        raise DS2Error(f"synth: {name} must not be negative, got {n}")
    return n


def _complete(path: Path) -> bool:
    """A finished file from a previous run (files are written atomically; verify anyway)."""
    if not path.is_file():
        return False
    try:
        audio_info(path)
        return True
    except AudioError:
        return False


def _espeak_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError:
        raise DS2Error("synth: the synthetic corpus needs espeak-ng: pip install 'ds2cli[synth]'") from None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def _variants(data_path: str) -> list[str]:
    folder = Path(data_path) / "voices" / "!v"
    variants = sorted(p.name for p in folder.iterdir()
                      if p.is_file() and p.name not in EXCLUDED_VARIANTS) if folder.is_dir() else []
    if len(variants) < 3:
        raise DS2Error(f"{folder}: espeak-ng voice variants not found; reinstall 'ds2cli[synth]'")
    return variants


# --- synthesis ---------------------------------------------------------------------------------
# espeak-ng is not thread-safe, keeps state from one utterance to the next (the same call twice
# gives slightly different audio, even after espeak_Terminate/Initialize and fixed random seeds)
# and segfaults on a few inputs. So each speaker process initialises one espeak instance and
# never speaks itself: it forks a child per utterance, which speaks from that pristine state and
# exits. espeak also seeds its breath noise from the clock, so each child seeds it from the
# utterance. The audio is then a function of the utterance alone (whatever ran before it, in
# whichever process), and a crash costs one utterance. Speakers stay free of torch (so forking
# is cheap: ~1 ms, plus ~5 ms of espeak warming up in the child); the parent resamples and writes.

class Espeak:
    """espeak-ng through ctypes, synchronous mode: `speak` returns int16 samples at
    `sample_rate` (22050 Hz)."""

    def __init__(self):
        lib_path, data_path = _espeak_paths()
        self.lib = ctypes.CDLL(lib_path)
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._libc = ctypes.CDLL(None) if os.name == "posix" else None
        if self._libc is not None:
            self._libc.srand.argtypes = [ctypes.c_uint]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if self.sample_rate <= 0:
            raise DS2Error(f"{data_path}: espeak-ng failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._callback = SYNTH_CALLBACK(self._on_audio)  # keep a reference, or ctypes frees it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, n, _events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = carry on

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
              seed: int = 1) -> np.ndarray:
        """Speak in this process. `seed` fixes the breath noise some variants add (espeak draws it
        from its own generator and libc's rand(), seeded at start-up from the clock).
        shape = (n_samples,) int16"""
        self.lib.espeak_ng_SetRandSeed(seed)
        if self._libc is not None:
            self._libc.srand(seed)
        if self.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((ESPEAK_RATE, rate), (ESPEAK_PITCH, pitch), (ESPEAK_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, value, 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if err != EE_OK:
            raise RuntimeError(f"espeak_Synth failed (error {err})")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)

    def speak_isolated(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
                       seed: int = 1) -> np.ndarray:
        """Speak in a forked child, leaving this instance's state untouched (see above).
        Raises SynthesisCrash if the child dies. shape = (n_samples,) int16"""
        if not hasattr(os, "fork"):  # Windows: no fork; deterministic only within one process
            return self.speak(text, voice, rate, pitch, pitch_range, seed)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: speak, send, leave without any Python clean-up
            code = 0
            try:
                os.close(read_fd)
                try:
                    message = b"OK" + self.speak(text, voice, rate, pitch, pitch_range, seed).tobytes()
                except RuntimeError as err:
                    message = b"ER" + str(err).encode()
                with os.fdopen(write_fd, "wb") as out:
                    out.write(message)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as inp:
            message = inp.read()  # read before waiting: the output is larger than a pipe's buffer
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) or os.waitstatus_to_exitcode(status) != 0 or len(message) < 2:
            raise SynthesisCrash(f"espeak-ng crashed (exit status {os.waitstatus_to_exitcode(status)})")
        if message[:2] == b"ER":
            raise RuntimeError(message[2:].decode(errors="replace"))
        return np.frombuffer(message[2:], np.int16)


class SynthesisCrash(RuntimeError):
    """The process speaking one utterance died."""


def finish(raw: np.ndarray, sample_rate: int, utt: Utterance) -> np.ndarray:
    """espeak's int16 output made into the final recording: 16 kHz, peak-normalised, padded,
    a little noise. shape = (n_samples,) int16 -> (m_samples,) float32"""
    if raw.size == 0 or not raw.any():
        raise RuntimeError("espeak-ng produced no audio")
    wave = resample(raw.astype(np.float32) / 32768.0, sample_rate, SAMPLE_RATE)
    wave *= utt.peak / max(float(np.abs(wave).max()), 1e-6)
    lead, trail = (np.zeros(int(round(s * SAMPLE_RATE)), np.float32) for s in (utt.lead_s, utt.trail_s))
    wave = np.concatenate([lead, wave, trail])
    noise = np.random.default_rng(utt.noise_seed).standard_normal(wave.size).astype(np.float32)
    return wave + utt.noise_std * noise


_SPEAKER: Espeak | None = None
_SPEAKER_ERROR = ""
_NO_ESPEAK = "espeak-ng failed to start"


def _init_speaker(lang: str) -> None:
    global _SPEAKER, _SPEAKER_ERROR
    try:
        _SPEAKER = Espeak()
    except (DS2Error, OSError) as err:  # raising here would make the pool restart us for ever
        _SPEAKER_ERROR = str(err)
        return
    # load the language's dictionary once here, not in every forked child (same for every speaker)
    _SPEAKER.lib.espeak_SetVoiceByName(ACCENTS[lang][0].encode())


def _speak(utt: Utterance) -> tuple[int, bytes] | tuple[str, str]:
    """In a speaker process: (sample rate, int16 bytes), or (skip reason, message)."""
    if _SPEAKER is None:
        return _NO_ESPEAK, _SPEAKER_ERROR
    try:
        raw = _SPEAKER.speak_isolated(utt.text, utt.voice, utt.rate, utt.pitch, utt.pitch_range,
                                      seed=utt.noise_seed & 0x7FFFFFFF)
    except SynthesisCrash as err:
        return "synthesis crashed", str(err)
    except RuntimeError as err:
        return "synthesis failed", str(err)
    return _SPEAKER.sample_rate, raw.tobytes()


def _synthesise(todo: list[tuple[str, Utterance]], jobs: int, lang: str,
                quiet: bool = False) -> list[Skip]:
    """Write every planned file in `todo`: `jobs` speaker processes speak, this one resamples
    and writes. Returns the failures."""
    import torch

    from ds2cli.progress import progress

    if not todo:
        return []
    skipped = []
    bar = progress(total=len(todo), desc=f"synthesising {lang}", quiet=quiet, unit="utt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torch's resampling on 2+ threads is ~20x slower on a busy machine
    try:
        with multiprocessing.get_context("spawn").Pool(max(1, jobs), initializer=_init_speaker,
                                                       initargs=(lang,)) as pool:
            spoken = pool.imap(_speak, [utt for _, utt in todo], chunksize=4)
            for (path, utt), (rate, payload) in zip(todo, spoken):
                bar.update(1)
                if rate == _NO_ESPEAK:
                    raise DS2Error(f"synth: {payload}")
                if isinstance(rate, str):
                    skipped.append(Skip(rate, path, f"{path}: {payload} speaking {utt.text!r} as {utt.voice}"))
                    continue
                try:
                    write_audio(path, finish(np.frombuffer(payload, np.int16), rate, utt), SAMPLE_RATE)
                except RuntimeError as err:
                    skipped.append(Skip("synthesis failed", path, f"{path}: {err} speaking {utt.text!r} as {utt.voice}"))
    finally:
        torch.set_num_threads(threads)
        bar.close()
    return skipped
