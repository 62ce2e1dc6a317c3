"""What the Runs screen shows of a run, as plain data: its state now, and the lines of its settings."""

from __future__ import annotations

from pathlib import Path

from rnn_playground.core.runs import RunDetails

from .monitor import RunSnapshot
from .settings import budget_of


def run_state(details: RunDetails, snap: RunSnapshot | None) -> tuple[str, bool, int, float | None]:
    """(state, live, step, best validation loss) of a run from its details (run.json) and the latest
    snapshot of its metrics, which run ahead: a run's metrics say it ended a moment before run.json does."""
    state, live = details.state or "unknown", details.info.live
    if live and snap is not None and snap.status in ("stopped", "finished", "error"):
        state, live = snap.status, False
    step = max(details.info.step, snap.step if snap is not None else 0)
    best = snap.best_val_loss if snap is not None and snap.best_val_loss is not None else details.info.best_val_loss
    return state, live, step, best


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
        lines.append([f"embed {model.get('embed', config.get('embed', '?'))}",
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
