"""stream: the vocabulary (core), the processing core (engine), its edges (io, kafka), the application (app), the
simulator, the strategy lab and the command line (cli); docs/design/layout.md shows the floors.

A worker's linear algebra is tiny (the bandit's posterior is under a hundred dimensions), and a worker runs one
process per core: BLAS threads would only contend with each other and with the worker (measured: 12× slower
decisions on a busy 2-core machine). Unless the operator says otherwise, BLAS runs single-threaded; XGBoost's
own threads (OpenMP, ``retrain --threads``) are not affected. This must happen before numpy is first imported.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
