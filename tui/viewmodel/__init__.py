"""The middle floor: plain Python that both faces stand on (run control, the event fold, settings checks,
each screen's view data and state machines, formatting). No Textual, no Rich: tests drive it without a terminal."""
