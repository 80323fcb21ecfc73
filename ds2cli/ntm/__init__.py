"""Neural Turing Machines (Graves et al. 2014): addressing (memory), models, the five tasks, training (train, run) and figures (plot)."""
