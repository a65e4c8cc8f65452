"""Every figure and table, and the reproduction report; reads traces, summaries and profiles.

- :mod:`edgeft.report.reproduce`: ``edgeft reproduce`` (runs :mod:`edgeft.sim.study`, then
  summarises it (:mod:`edgeft.report.summary`), draws it (:mod:`edgeft.report.figures`) and
  writes report.md (:mod:`edgeft.report.markdown`));
- :mod:`edgeft.report.fig4`: per-depth memory and latency of a cost profile (paper Fig. 4);
- :mod:`edgeft.report.fig7`: dev metric against modelled time (paper Fig. 7);
- :mod:`edgeft.report.table1`: modelled time to a target metric (paper Table I);
- :mod:`edgeft.report.finetune_section`: Fig. 7 and Table I in report.md.

Importing this package imports nothing else (matplotlib loads with the figure modules).
"""
