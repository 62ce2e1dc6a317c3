"""The headless face: `rnn-playground train`, `sample`, `runs`, `gates`, `series` ... rendered with Rich."""
