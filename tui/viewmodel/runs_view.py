"""What the Runs screen shows of a run, as plain data: its state now, whether it can be steered from here
(and why not), and the lines of its settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rnn_playground.core import runs
from rnn_playground.core.model import embed_text
from rnn_playground.core.runs import RunDetails

from .monitor import RunSnapshot
from .settings import budget_of

if TYPE_CHECKING:
    from .controller import RunState


def run_state(details: RunDetails, snap: RunSnapshot | None) -> tuple[str, bool, int, float | None]:
    """(state, live, step, best validation loss) of a run from its details (run.json) and the latest
    snapshot of its metrics, which run ahead: a run's metrics say it ended a moment before run.json does."""
    state, live = details.state or "unknown", details.info.live
    if live and snap is not None and snap.status in ("stopped", "finished", "error"):
        state, live = snap.status, False
    step = max(details.info.step, snap.step if snap is not None else 0)
    best = snap.best_val_loss if snap is not None and snap.best_val_loss is not None else details.info.best_val_loss
    return state, live, step, best


@dataclass(frozen=True)
class ControlReach:
    """Whether commands from this process can reach a run through its folder (read in a worker: files)."""
    channel: bool   # run.json names the run's control channel (its run_id): a version that has one
    writable: bool  # this user may write the folder (its permissions decide who controls a run)

    @classmethod
    def of(cls, run_dir: Path) -> ControlReach:
        return cls(isinstance(runs.read_status(run_dir).get("run_id"), str), os.access(run_dir, os.W_OK | os.X_OK))


def control_note(live: bool, reach: ControlReach | None, state: RunState | None) -> str:
    """Why a live run's pause, save and stop keys do not apply here, in plain words; "" when they do (or the run
    is not training: its state says so, and there is nothing to pause)."""
    if not live or reach is None:
        return ""
    if not reach.writable:
        return ("watch only: this user cannot write the run's folder, and its permissions decide who may "
                "control a run")
    if not reach.channel:
        return "watch only: started by a version without a control channel; Ctrl+C where it runs stops it"
    if state is not None and state.active and not state.controllable:
        return "watch only: the run's folder refused the last command (the message said why)"
    return ""


def settings_lines(details: RunDetails) -> list[list[str]]:
    """A run's own settings, as lines of phrases (a line may break between phrases, never inside one)."""
    return series_lines(details) if details.info.kind == "series" else char_lines(details)


def budget_text(config: dict) -> str:
    kind, budget = budget_of(config)
    return f"{budget:,g} {kind}"


def char_lines(details: RunDetails) -> list[list[str]]:
    config, model = details.config, details.model
    lines = [[f"corpus {details.corpus}"]] if details.corpus else []
    if config:
        embed = model.get("embed", config.get("embed", "?"))
        lines.append([f"embed {embed_text(embed) if isinstance(embed, int) else embed}",
                      f"dropout {model.get('dropout', config.get('dropout', '?'))}",
                      f"seed {config.get('seed', '?')}"])
        lines.append([f"batch {config.get('batch', '?')}", f"seq {config.get('seq', '?')}",
                      f"lr {config.get('lr', '?')}", budget_text(config)])
    return lines


def series_lines(details: RunDetails) -> list[list[str]]:
    """A series run's own settings: its data (the CSV's file name and target column, or the
    built-in signal), its window and training settings."""
    series, data, config = details.series, details.data, details.config
    names = data.get("names") or []
    if series.get("csv"):
        source = [f"csv {Path(series['csv']).name}",
                  f"target {series.get('column') or (names[0] if names else '?')}"]
        if series.get("inputs") or len(names) > 1:
            source.append(f"inputs {series.get('inputs') or ', '.join(names[1:])}")
    elif series:
        source = [f"signal {series.get('signal') or 'sine'}", f"{series.get('length', 0):,} points"]
        if series.get("noise"):
            source.append(f"noise {series['noise']:g}")
    else:  # no checkpoint yet: what run.json says
        source = [str(config.get("corpus", "series")).replace(":", " ", 1)]
    settings = series or config
    training = [f"window {settings.get('seq', '?')}", f"batch {settings.get('batch', '?')}",
                f"lr {settings.get('lr', '?')}"]
    if settings:
        training.append(budget_text(settings))
    training += [f"dropout {settings.get('dropout', '?')}", f"seed {settings.get('seed', '?')}"]
    return [source, training]
