"""What a run leaves on disk, one module per job.

files        atomic writes, folders, and the messages for disk errors
names        run ids, timestamps and file-name-safe approach names
models       fastai exports and pickled baselines under models/
history      results/history.jsonl, the append-only record of every run
tables       the notebook's per-run CSVs (results and epochs)
export       the comparison table of many runs, as CSV or Markdown
predictions  each run's validation probabilities (results/predictions/)
outputs      which existing files a user-named output may replace

Every file under models/ and results/ is either complete or absent (files.atomic_write).
"""
