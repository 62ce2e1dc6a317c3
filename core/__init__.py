"""The engine: torch and numpy only (never Textual or Rich)."""

import os

# OpenMP workers that spin while they wait for each other collapse when other programs share the
# cores (training 10 to 300 times slower on a crowded machine); workers that sleep do not
# (benchmarks/README.md, "Threads"). The OpenMP runtime reads this once, when torch loads, so it
# is set here, before any core module imports torch. A value already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
