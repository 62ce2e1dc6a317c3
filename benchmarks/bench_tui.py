"""App responsiveness: key press -> screen, and what the app costs the training it shows.

While a default-configuration CPU training runs inside the app (headless, `App.run_test`), the
app first just shows it (half the phase: "watching"), then keys are pressed through the app's
driver, as a terminal's would deliver them, one every `--interval` seconds: switch to Runs and
back, open and close help, pause and resume. A key's latency is the time from sending it to the first frame the
app renders (the compositor update it hands to the driver) that shows its effect: the new screen,
the help, "pausing"/"resuming" in the status line. Headless, the frame is not encoded to escape
sequences; everything before that is the real path.

Training speed is read the same way for both ways of running, from the run's metrics.jsonl:
characters per second between the first and the last step event (so start-up, the corpus load
and the final validation are left out). "Headless" is the Trainer iterated in the main thread, the
way `rnn-playground train` drives it, without its display; the app's overhead is measured against
that. Each phase runs in a fresh process (see `child`: a main thread that has trained makes any
training thread in that process slower), after an untimed warm-up training in the same kind of
thread; phases alternate (headless, app; app, headless; ...) to spread out a shared machine's
noise, and the first two step events of each run are left out.

The training configuration is the default (`TrainConfig()`: LSTM 2x512, batch 128, seq 100, the
built-in stdlib corpus) on the CPU, with a time budget per phase and `val_fraction=0.01` so the
validation at the end of each phase takes seconds, not half a minute; neither changes the speed of
a training step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import BusyNeighbour, chars_per_second, print_table, runs_dir

KEY_CYCLE = ("5", "1", "question_mark", "escape", "space", "space")


THREADS: int | None = None  # --threads: the runs' thread count (None: the automatic choice)
HIDDEN = 512                # --hidden: the model's hidden size (the default's 512)


def config_for(seconds: float, runs: str):
    from rnn_playground.core.config import TrainConfig
    return TrainConfig(device="cpu", minutes=seconds / 60, val_fraction=0.01, runs_dir=runs, threads=THREADS,
                       hidden=HIDDEN)


def run_threads(run_dir: Path) -> int:
    """The torch threads the run trained on (its started event)."""
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "started":
            return record.get("threads", 0)
    return 0


def headless_phase(seconds: float) -> Path:
    from rnn_playground.core.trainer import Trainer
    trainer = Trainer(config_for(seconds, runs_dir()))
    for _ in trainer.run():
        pass
    return trainer.run_dir


class FrameWatch:
    """Wraps the app's frame hand-off to record when a frame first shows a condition."""

    def __init__(self, app):
        self.app = app
        self.pending: tuple | None = None
        self.frames = 0
        original = app._display

        def display(screen, renderable):
            original(screen, renderable)
            if renderable is None:
                return
            self.frames += 1
            if self.pending is not None:
                condition, done = self.pending
                if condition(screen):
                    self.pending = None
                    done.set_result(time.perf_counter())

        app._display = display

    def expect(self, condition) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.pending = (condition, future)
        return future


def send_key(app, key: str) -> None:
    """A key event through the driver, as the terminal driver would deliver it."""
    from textual import events
    char = {"question_mark": "?", "space": " "}.get(key, key if len(key) == 1 else None)
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


async def key_latency_ms(app, watch: FrameWatch, key: str, shows) -> float:
    """Milliseconds from sending `key` to the first frame for which shows(screen) holds (inf after 10 s)."""
    future = watch.expect(shows)
    sent = time.perf_counter()
    send_key(app, key)
    try:
        return (await asyncio.wait_for(future, 10.0) - sent) * 1000
    except asyncio.TimeoutError:
        watch.pending = None
        return float("inf")


def status_text(app) -> str:
    screen = app.screen
    try:
        return str(screen.query_one("#run-status").content)
    except Exception:  # noqa: BLE001 - not mounted yet
        return ""


async def app_phase(seconds: float, interval: float, size=(120, 40)
                    ) -> tuple[Path, float, dict[str, list[float]], int]:
    """Train in the app; watch for the first half, then press a key every `interval` seconds.
    Returns the run folder, the wall time the key presses began, the latencies and the frames."""
    from rnn_playground.tui.app.screens.help import HelpScreen
    from rnn_playground.tui.app.screens.runs import RunsScreen
    from rnn_playground.tui.app.screens.train import TrainScreen
    from rnn_playground.tui.app.shell import PlaygroundApp
    runs = runs_dir()
    app = PlaygroundApp(runs_dir=runs, initial_config=config_for(seconds, runs), watch_interval=1.0,
                        freeze_gc=True)  # as rnn-playground makes it (one app in this process)
    latencies: dict[str, list[float]] = {}
    async with app.run_test(size=size) as pilot:
        watch = FrameWatch(app)
        await pilot.pause()
        send_key(app, "s")
        while app.train_controller.snapshot.status != "training" or app.train_controller.snapshot.step < 2:
            await asyncio.sleep(0.1)
        keys_from = time.time() + seconds / 2
        while app.train_controller.active and time.time() < keys_from:
            await asyncio.sleep(0.2)
        conditions = {
            "5": ("switch to Runs", lambda screen: isinstance(screen, RunsScreen)),
            "1": ("switch to Train", lambda screen: isinstance(screen, TrainScreen)),
            "question_mark": ("open help", lambda screen: isinstance(screen, HelpScreen)),
            "escape": ("close help", lambda screen: isinstance(screen, TrainScreen)),
        }
        index = 0
        while app.train_controller.active and app.train_controller.snapshot.status != "finished":
            key = KEY_CYCLE[index % len(KEY_CYCLE)]
            index += 1
            if key == "space":
                pausing = app.train_controller.snapshot.status != "paused" and not app.train_run.pause_requested
                label = "pause (space)" if pausing else "resume (space)"
                word = "pausing" if pausing else "resuming"
                def condition(screen, word=word):
                    shown = status_text(app)
                    settled = "paused" if word == "pausing" else "training"  # the word may pass between frames
                    return isinstance(screen, TrainScreen) and (word in shown or settled in shown)
            else:
                label, condition = conditions[key]
            future = watch.expect(condition)
            sent = time.perf_counter()
            send_key(app, key)
            try:
                shown = await asyncio.wait_for(future, 5.0)
                latencies.setdefault(label, []).append((shown - sent) * 1000)
            except asyncio.TimeoutError:
                latencies.setdefault(label, []).append(float("inf"))
                watch.pending = None
            await asyncio.sleep(interval if key != "space" or pausing is False else 0.3)
        if app.train_controller.snapshot.status == "paused":
            app.train_controller.resume()
        while app.train_controller.active:
            await asyncio.sleep(0.2)
        run_dir = Path(app.train_controller.snapshot.run_dir)
        frames = watch.frames
        await pilot.press("q")
    return run_dir, keys_from, latencies, frames


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def warm_up(seconds: float = 8.0, thread: bool = False) -> None:
    """The first training in a process is slower (kernel and allocator warm-up): one untimed, in
    the same kind of thread as the timed one (see `child`)."""
    if not thread:
        headless_phase(seconds)
        return
    import threading
    worker = threading.Thread(target=headless_phase, args=(seconds,))
    worker.start()
    worker.join()


def child(phase: str, seconds: float, interval: float) -> dict:
    """One measured phase in this (fresh) process."""
    if phase == "headless":
        warm_up()
        run_dir = headless_phase(seconds)
        rate, steps = chars_per_second(run_dir)
        return {"rate": rate, "steps": steps, "threads": run_threads(run_dir)}
    # The app's main thread must never run torch's parallel code itself: once the main thread has
    # used OpenMP, a training thread runs markedly slower (measured here: the LSTM forward 35%).
    # The app never does; a benchmark that trained headless in the same process would.
    warm_up(thread=True)
    run_dir, keys_from, latencies, frames = asyncio.run(app_phase(seconds, interval))
    rate_w, steps_w = chars_per_second(run_dir, until=keys_from)
    rate_p, steps_p = chars_per_second(run_dir, since=keys_from)
    return {"watching": rate_w, "steps_watching": steps_w, "pressing": rate_p, "steps_pressing": steps_p,
            "threads": run_threads(run_dir),
            "latencies": latencies, "frames": frames}


def run_child(phase: str, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_tui", "--phase", phase, "--seconds", str(args.seconds),
               "--interval", str(args.interval)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    command += ["--hidden", str(args.hidden)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"the {phase} phase failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40.0, help="training budget of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="headless/app pairs")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between key presses")
    parser.add_argument("--threads", type=int, default=None,
                        help="the runs' torch threads (default: the automatic choice, as in rnn-playground)")
    parser.add_argument("--hidden", type=int, default=512,
                        help="hidden size (smaller: more steps per phase on a slow or crowded machine)")
    parser.add_argument("--busy", action="store_true",
                        help="a busy neighbour: a process spinning on one core throughout, as on a shared machine")
    parser.add_argument("--phase", choices=("headless", "app"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global THREADS, HIDDEN
    THREADS, HIDDEN = args.threads, args.hidden
    if args.phase:
        print("RESULT " + json.dumps(child(args.phase, args.seconds, args.interval)), flush=True)
        return
    import textual
    print(f"torch {torch.__version__}, {args.threads or 'automatic'} threads, textual {textual.__version__}; "
          f"default TrainConfig (hidden {args.hidden}) on the CPU, {args.seconds:g} s per phase, {args.rounds} rounds, "
          f"each phase in a fresh process" + ("; a busy neighbour on one core" if args.busy else ""), flush=True)
    with BusyNeighbour(args.busy):
        report(args)


def report(args) -> None:
    headless, watching, pressing = [], [], []
    latencies: dict[str, list[float]] = {}
    frames = 0
    for round_ in range(args.rounds):
        order = ("headless", "app") if round_ % 2 == 0 else ("app", "headless")  # evens out a drifting load
        for phase in order:
            result = run_child(phase, args)
            if phase == "headless":
                headless.append(result["rate"])
                print(f"round {round_ + 1}: headless {result['rate']:,.0f} chars/s over {result['steps']} steps "
                      f"on {result['threads']} threads",
                      flush=True)
                continue
            watching.append(result["watching"])
            pressing.append(result["pressing"])
            frames += result["frames"]
            for label, values in result["latencies"].items():
                latencies.setdefault(label, []).extend(values)
            print(f"round {round_ + 1}: in the app {result['watching']:,.0f} chars/s watching "
                  f"({result['steps_watching']} steps), {result['pressing']:,.0f} chars/s with keys "
                  f"({result['steps_pressing']} steps) on {result['threads']} threads; "
                  f"{sum(len(v) for v in result['latencies'].values())} key presses, {result['frames']} frames",
                  flush=True)

    rows = []
    everything = [v for values in latencies.values() for v in values]
    for label, values in list(latencies.items()) + [("all keys", everything)]:
        rows.append([label, len(values), f"{statistics.median(values):.1f}", f"{percentile(values, 0.95):.1f}",
                     f"{max(values):.1f}"])
    print_table("key press -> frame showing it (ms), while training", ["key", "n", "median", "p95", "max"], rows)
    h, w, p = (statistics.median(x) for x in (headless, watching, pressing))
    print_table("training speed (chars/s)", ["", "per round", "median", "vs headless"],
                [["headless Trainer", ", ".join(f"{x:,.0f}" for x in headless), f"{h:,.0f}", "-"],
                 ["app, watching", ", ".join(f"{x:,.0f}" for x in watching), f"{w:,.0f}", f"{(w / h - 1):+.1%}"],
                 [f"app, a key every {args.interval:g} s", ", ".join(f"{x:,.0f}" for x in pressing), f"{p:,.0f}",
                  f"{(p / h - 1):+.1%}"]])
    p95 = percentile(everything, 0.95)
    print(f"\napp vs headless: {(w / h - 1):+.1%} watching, {(p / h - 1):+.1%} with keys (target: no worse "
          f"than -15%); key p95 {p95:.1f} ms (target < 100 ms); {frames} frames")


if __name__ == "__main__":
    main(sys.argv[1:])
