"""One module per corpus. Each turns a corpus on disk into `Item`s per split with
`collect(corpus_dir, work_dir, *, jobs, seed, **options) -> Collected`; `ds2cli.data_prep.common.prepare`
does the rest (validation, manifests, alphabet, feature statistics) the same way for all."""

PREPARERS = {
    "librispeech": "ds2cli.data_prep.librispeech",
    "aishell": "ds2cli.data_prep.aishell",
    "fsdd": "ds2cli.data_prep.fsdd",
    "arctic": "ds2cli.data_prep.arctic",
    "generic": "ds2cli.data_prep.generic",
    "synth": "ds2cli.data_prep.synth",
}
