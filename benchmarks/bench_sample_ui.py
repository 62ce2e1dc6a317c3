"""Sample screen: characters per second shown in the app while streaming, against the raw sampler,
and key-press latency while the text streams in.

A CharRNN LSTM 2x256 (embedding 64, fixed random weights; the speed of sampling does not depend
on what the weights are) is saved as a checkpoint and sampled two ways:

- raw: `Sampler.generate` in the main thread, nothing else running;
- in the app: the Sample screen (headless, `App.run_test`, 120x40) streams the same length with
  the sampler in its worker thread and chunks of text drawn about ten times a second. The rate is
  the one the screen shows (its result line) when the stream ends.

While the app streams, the temperature keys (t and T, alternately) are sent through the app's
driver every 0.2 s, as a terminal would send them; a key's latency is the time from sending it to
the first frame the app renders that shows the new temperature. Headless, frames are not encoded
to escape sequences; everything before that is the real path.

The same is measured with four samples drawn together (n n: N = 4, one batched pass, four panes
side by side), against one stream in the same run: the key -> frame p95 must stay under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import statistics
import time
from pathlib import Path

import torch

from benchmarks.bench_tui import FrameWatch, percentile, send_key
from benchmarks.common import SHARED_DATA, print_table, runs_dir

RATE = re.compile(r"([\d,]+) chars/s")


def make_checkpoint(root: Path, hidden: int = 256, layers: int = 2) -> Path:
    """A 2x256 LSTM character model with fixed random weights, saved as the trainer saves one."""
    from rnn_playground.core import runs
    from rnn_playground.core.checkpoint import save_checkpoint
    from rnn_playground.core.config import TrainConfig
    from rnn_playground.core.corpus import Vocab
    from rnn_playground.core.model import CharRNN
    source = SHARED_DATA / "tinyshakespeare.txt"
    text = source.read_text(encoding="utf-8") if source.exists() else \
        "".join(chr(c) for c in range(32, 127)) + "\n"
    vocab = Vocab.from_text(text)
    config = TrainConfig(corpus=str(source), hidden=hidden, layers=layers, embed=64, dropout=0.0)
    torch.manual_seed(0)
    model = CharRNN(config.model_config(len(vocab)))
    meta = {"kind": "char", "vocab": list(vocab.chars), "config": {**config.to_dict(), "model": model.config.to_dict()},
            "model": model.config.to_dict(), "progress": {"step": 0}, "best_val_loss": None, "device": "cpu",
            "corpus": {"spec": str(source), "source": str(source), "fingerprint": "0" * 64, "chars": len(text)}}
    run = root / f"lstm-{layers}x{hidden}"
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / runs.LAST, {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}, meta)
    return run


def raw_rate(run: Path, length: int) -> float:
    from rnn_playground.core.sampling import Sampler, SampleSettings
    sampler = Sampler.from_checkpoint(run, "cpu")
    start = time.perf_counter()
    text = sampler.generate(SampleSettings(length=length, seed=1))
    assert len(text) == length
    return length / (time.perf_counter() - start)


async def app_round(run: Path, length: int, pace_presses: int = 0, samples: int = 1,
                    ) -> tuple[float, float, list[float], int]:
    """One stream (or `samples` drawn together) in the app: (shown chars/s at the end, all streams
    together; raw-ish rate from the chunks; key latencies ms; chunks drawn)."""
    from rnn_playground.core.device import DeviceInfo
    from rnn_playground.tui.app.screens.sample import SampleScreen
    from rnn_playground.tui.app.shell import PlaygroundApp
    app = PlaygroundApp(runs_dir=run.parent, devices=[DeviceInfo("cpu", "CPU", None, None)], mode="sample",
                        freeze_gc=True)  # as rnn-playground makes it; unfrozen when the round ends
    latencies: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run("sample", run)
        while not (isinstance(app.screen, SampleScreen) and app.screen.checkpoint is not None):
            await asyncio.sleep(0.05)
        screen: SampleScreen = app.screen
        screen.stream.seed, screen.stream.seed_fixed = 1, True
        screen.stream.length = length
        screen.stream.pace = None
        for _ in range(pace_presses):
            await pilot.press("w")
        while screen.stream.samples < samples:
            await pilot.press("n")
        await pilot.pause()
        watch = FrameWatch(app)
        send_key(app, "g")
        while not screen.stream.streaming:
            await asyncio.sleep(0.005)
        up = True
        while screen.stream.streaming:
            await asyncio.sleep(0.2)
            if not screen.stream.streaming:
                break
            target = round(screen.stream.temperature + (0.1 if up else -0.1), 2)
            shown = f"temperature {target:.2f}"
            future = watch.expect(lambda s, shown=shown: shown in s.query_one("#sample-settings").content.plain)
            sent = time.perf_counter()
            send_key(app, "t" if up else "T")
            up = not up
            try:
                latencies.append((await asyncio.wait_for(future, 5.0) - sent) * 1000)
            except asyncio.TimeoutError:
                latencies.append(float("inf"))
                watch.pending = None
        await pilot.pause()
        result = screen.query_one("#sample-result").content.plain
        match = RATE.search(result)
        shown_rate = float(match.group(1).replace(",", "")) if match else float("nan")
        chunks = screen.stream.chunks_drawn
        chunk = screen.stream.last_chunk
        assert chunk is not None and chunk.chars == length * samples, result
        assert [len(text) for text in screen.stream.texts] == [length] * samples
    gc.unfreeze()
    return shown_rate, chunk.chars_per_s or float("nan"), latencies, chunks


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=20000, help="characters per stream")
    parser.add_argument("--rounds", type=int, default=3, help="raw/app pairs")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's own)")
    parser.add_argument("--samples-length", type=int, default=5000,
                        help="characters per stream in the one-stream / four-samples key latency rounds")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import textual
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, textual {textual.__version__}; "
          f"LSTM {args.layers}x{args.hidden}, {args.length:,} chars per stream, {args.rounds} rounds", flush=True)
    run = make_checkpoint(Path(runs_dir()), args.hidden, args.layers)
    raw, shown, worker, latencies, chunks = [], [], [], [], []
    for round_ in range(args.rounds):
        raw.append(raw_rate(run, args.length))
        rate, inner, lat, n = asyncio.run(app_round(run, args.length))
        shown.append(rate)
        worker.append(inner)
        latencies.extend(lat)
        chunks.append(n)
        print(f"round {round_ + 1}: raw {raw[-1]:,.0f} chars/s; shown in the app {rate:,.0f} chars/s "
              f"({n} chunks drawn); {len(lat)} key presses, median {statistics.median(lat):.1f} ms", flush=True)
    paced, _, _, _ = asyncio.run(app_round(run, 300, pace_presses=3))  # w w w: 100 chars/s
    print_table("Sample screen: streaming speed", ["", "chars/s (median)", "min", "max"], [
        ["raw sampler (Sampler.generate)", statistics.median(raw), min(raw), max(raw)],
        ["shown in the app while streaming", statistics.median(shown), min(shown), max(shown)],
        ["app / raw", statistics.median(shown) / statistics.median(raw), min(shown) / max(raw),
         max(shown) / min(raw)],
        ["typewriter pace 100/s (w w w), shown", paced, paced, paced],
    ])
    print_table("Key press -> frame showing it, while streaming (t/T temperature)", ["presses", "median ms", "p95 ms",
                                                                                      "max ms"],
                [[len(latencies), statistics.median(latencies), percentile(latencies, 0.95), max(latencies)]])
    print(f"chunks drawn per stream: {', '.join(str(n) for n in chunks)} "
          f"(for {args.length:,} chars each: never one per character)")
    # One stream against four drawn together, in turn, the same length each: key -> frame latency.
    latency: dict[int, list[float]] = {1: [], 4: []}
    rate: dict[int, list[float]] = {1: [], 4: []}
    drawn: dict[int, list[int]] = {1: [], 4: []}
    for _ in range(args.rounds):
        for samples in (1, 4):
            shown_rate, _, lat, n = asyncio.run(app_round(run, args.samples_length, samples=samples))
            latency[samples].extend(lat)
            rate[samples].append(shown_rate)
            drawn[samples].append(n)
    base = percentile(latency[1], 0.95)
    print_table(f"Key press -> frame while streaming: 1 sample vs 4 drawn together "
                f"({args.samples_length:,} chars each)",
                ["", "presses", "median ms", "p95 ms", "max ms", "p95 / 1 sample", "chars/s shown (all)",
                 "chunks drawn"],
                [[f"{samples} sample{'s' if samples > 1 else ''}", len(latency[samples]),
                  statistics.median(latency[samples]), percentile(latency[samples], 0.95), max(latency[samples]),
                  f"{percentile(latency[samples], 0.95) / base:.2f}x", statistics.median(rate[samples]),
                  statistics.median(drawn[samples])] for samples in (1, 4)])


if __name__ == "__main__":
    main()
