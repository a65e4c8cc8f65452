"""Real fine-tuning for DEFT: LoRA models cut into depth blocks, GLUE data, truncated
back-propagation (paper section II-B), cost profiling (Fig. 4), and the round executors.

Modules, one job each:

- :mod:`edgeft.train.config`: the run settings (``LoopConfig``, ``RunOptions``,
  ``FinetuneConfig``), checked once; no torch.
- :mod:`edgeft.train.tasks`: the GLUE tasks and their metrics' names; no torch.
- :mod:`edgeft.train.plan`: Table I's per-task plan; no torch.
- :mod:`edgeft.train.models`: load an encoder classifier, wrap it with LoRA, define blocks.
- :mod:`edgeft.train.data`: GLUE TSV reading, tokenisation, device shards, batch streams.
- :mod:`edgeft.train.metrics`: each GLUE task's metric and the evaluation loop.
- :mod:`edgeft.train.blockgrad`: gradient of one block with back-propagation stopped there.
- :mod:`edgeft.train.profiler`: measured per-depth latency and memory -> ``BlockCostProfile``.
- :mod:`edgeft.train.checkpoint`: checkpoints and the JSONL trace.
- :mod:`edgeft.train.loop`: the driver every executor shares (``RoundLoop.run``; Adam step,
  evaluation, resume) around one abstract ``step``.
- :mod:`edgeft.train.executor`: the DEFT round executor (allocations come from outside).
- :mod:`edgeft.train.centralized`: the centralised LoRA fine-tuning oracle.
- :mod:`edgeft.train.finetune`: one GLUE task's study (data only: traces and summary.json).

Importing this package does not import torch; the modules that compute do.
"""
