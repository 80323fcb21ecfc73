"""One module per corpus. Each turns a corpus on disk into `Item`s per split with
`collect(corpus_dir, work_dir, *, jobs, seed, **options) -> Collected`; `data_prep.common.prepare`
does the rest (validation, manifests, alphabet, feature statistics) the same way for all."""

PREPARERS = {
    "librispeech": "data_prep.librispeech",
    "aishell": "data_prep.aishell",
    "fsdd": "data_prep.fsdd",
    "arctic": "data_prep.arctic",
    "generic": "data_prep.generic",
    "kaldi": "data_prep.kaldi",
    "synth": "data_prep.synth",
}
