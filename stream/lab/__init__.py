"""The strategy lab: full retraining, recency-sampled retraining, warm-start fine-tuning, online-only and hybrid,
replayed side by side on the same stream (``offerstream backtest``). See :mod:`stream.lab.backtest`."""
