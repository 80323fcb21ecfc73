"""CTC forced alignment, timestamps, and filtering of bad transcripts (DS2 section 5).

forced.py   Viterbi path, token/word spans, alignment features
api.py      aligning a manifest (batched through the network), filtering, fitting a filter
filter.py   threshold and logistic-regression filters, saved as JSON
corrupt.py  deliberately wrong transcripts (swap, drop, insert, substitute)
splice.py   connected-word utterances with known word times (timing ground truth)
"""
