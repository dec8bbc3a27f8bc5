"""What a run leaves on disk, one module per job.

files        atomic writes, folders, and the messages for disk errors
names        run ids, timestamps and file-name-safe approach names
models       fastai exports and pickled baselines under models/
history      results/history.jsonl, the append-only record of every run
tables       the notebook's per-run CSVs and the exported comparison table
predictions  each run's validation probabilities (results/predictions/)

Every file under models/ and results/ is either complete or absent (files.atomic_write).
"""
