"""The evaluation harness behind `musicbench.evaluate` (the stage API), one module per job:

- `outputs`: what a model's outputs must be (`check_estimates`, `check_heatmaps`) and how a run folder
  holds them (``estimates/``, ``heatmaps/``, inference.parquet's `INFERENCE_COLUMNS`);
- `oracles`: the ideal-mask ceilings and the mixture floor, computed from the references;
- `inference`: a model (confined in its own process, or an object of this one) or an oracle run on
  every item of a split, its outputs written to the run folder (`run_inference`);
- `scoring`: a run folder's outputs scored (`score_items`, `score_run`: items.parquet) through the
  signed score cache (`ScoreCache`);
- `summaries`: summary.json from the scored rows (`summarize`);
- `provenance`: provenance.json (`provenance`).

Run folders themselves (claimed, staged, swapped in) are `musicbench.run_folder`'s. `inference` and
`scoring` import `outputs` and `oracles`, never each other; importing this package imports none of
its modules.
"""
