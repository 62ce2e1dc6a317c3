"""A rank of a distributed test run, started by torchrun (tests/test_distributed.py): the real Trainer in its
process group, every rank's events written to RANK_EVENTS_DIR/rank<r>.jsonl so a test can compare the ranks.

Usage: python -m torch.distributed.run --standalone --nproc-per-node 2 tests/rank_worker.py CONFIG_JSON OUT_DIR
"""

import json
import os
import sys
from pathlib import Path

import torch

from rnn_playground.core.config import TrainConfig
from rnn_playground.core.distributed import join_from_environment
from rnn_playground.core.trainer import TrainControl, Trainer

config = TrainConfig(**json.loads(sys.argv[1]))
out = Path(sys.argv[2]).resolve()
# Each rank in a folder of its own: a relative runs folder then shows whether a rank other than 0 wrote anything.
home = out / f"cwd{os.environ['RANK']}"
home.mkdir(exist_ok=True)
os.chdir(home)
torch.set_num_threads(1)
group = join_from_environment(torch.device("cpu"))
code = 1
try:
    trainer = Trainer(config, TrainControl(), group=group)
    with open(out / f"rank{group.rank}.jsonl", "w") as log:
        for event in trainer.run():
            log.write(json.dumps(event.to_json()) + "\n")
            log.flush()
    code = 0
finally:
    # As the train command's workers do: no C++ teardown of the process group at exit (it now and then aborts).
    sys.stdout.flush()
    os._exit(code)
