"""Real fine-tuning for DEFT: LoRA models cut into depth blocks, GLUE data, truncated
back-propagation (paper section II-B), cost profiling (Fig. 4), and the round executor.

Modules, one job each:

- :mod:`edgeft.train.models`: load an encoder classifier, wrap it with LoRA, define blocks.
- :mod:`edgeft.train.data`: GLUE TSV reading, tokenisation, device shards, batch streams.
- :mod:`edgeft.train.metrics`: each GLUE task's metric and the evaluation loop.
- :mod:`edgeft.train.blockgrad`: gradient of one block with back-propagation stopped there.
- :mod:`edgeft.train.profiler`: measured per-depth latency and memory -> ``BlockCostProfile``.
- :mod:`edgeft.train.checkpoint`: checkpoints and the JSONL trace.
- :mod:`edgeft.train.loop`: what both trainers share (Adam step, evaluation, resume).
- :mod:`edgeft.train.executor`: the DEFT round executor (allocations come from outside).
- :mod:`edgeft.train.centralized`: the centralised LoRA fine-tuning oracle.
- :mod:`edgeft.train.cli`: the ``edgeft profile`` sub-command.

Importing this package does not import torch; the modules do.
"""
