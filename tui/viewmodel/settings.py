"""Checking settings before a run starts: a form's text to a config or to errors named by field and flag,
the corpus checked for size, and each setting's help."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rnn_playground.core.config import TrainConfig, embed_from_text, flag_of
from rnn_playground.core.corpus import BUILTIN_STDLIB, Corpus, check_size, load_corpus, minimum_chars
from rnn_playground.core.device import DeviceInfo
from rnn_playground.core.download import REMOTE_CORPORA, cache_dir
from rnn_playground.core.errors import ConfigError, PlaygroundError
from rnn_playground.core.model import embed_text

from .format import fmt_memory

# --------------------------------------------------------------------------- settings


BUDGET_KINDS = ("minutes", "steps", "epochs")
FORM_FIELDS = ("hidden", "layers", "embed", "dropout", "batch", "seq", "lr", "ema", "val_every", "seed", "threads")
AUTO = "auto"  # a form's text for a setting left to the automatic choice (threads)


def threads_from_text(text: str) -> int | None:
    """A form's threads field: "auto" (or empty) for the automatic choice, else a whole number."""
    text = text.strip().lower()
    if text in ("", AUTO):
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"threads must be auto or a whole number of CPU threads, got '{text}'.") from None


def device_choices(devices: list[DeviceInfo], auto: str) -> list[tuple[str, str]]:
    """The device picker's (label, value) choices: the automatic one, each device, then runs in several
    processes (a value with commas is a --devices list): the first 2, 4, ... GPUs and all of them, one
    process each, and two CPU processes (gloo), to try it on any machine."""
    choices = [(f"auto  (picks {auto})", AUTO)]
    for info in devices:
        memory = fmt_memory(info.free_memory, info.total_memory)
        choices.append((f"{info.spec}  {info.name}" + (f"  {memory}" if memory else ""), info.spec))
    gpus = [info.spec for info in devices if info.spec.startswith("cuda:")]
    counts = sorted({n for n in (2, 4, 8, 16) if n < len(gpus)} | ({len(gpus)} if len(gpus) > 1 else set()))
    for n in counts:
        which = "all " if n == len(gpus) else ""
        choices.append((f"{which}{n} GPUs  {gpus[0]}..{gpus[n - 1]}, one process each (NCCL)", ",".join(gpus[:n])))
    choices.append(("cpu x2  two processes (gloo)", "cpu,cpu"))
    return choices


def several_devices(value: str) -> bool:
    """Whether a device choice is a run in several processes (a --devices list), not one device."""
    return "," in value


@dataclass(frozen=True)
class SettingsCheck:
    """The outcome of checking a settings form: a config to run when `errors` is empty."""
    config: TrainConfig | None
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors and self.config is not None


def field_type(field: dataclasses.Field) -> type:
    """What a config field holds, bool, int, float or str, read from its annotation (a string under
    `from __future__ import annotations`; "int | None" is int)."""
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    return next((t for t in (bool, int, float) if kind.startswith(t.__name__)), str)


def _field_type(name: str) -> type:
    return field_type({f.name: f for f in dataclasses.fields(TrainConfig)}[name])


_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w-])")


def name_settings(message: str, names: Mapping[str, str]) -> str:
    """An engine message (which names settings by their flags, as the CLI shows them) with each
    setting in `names` (field name -> what a front end calls it) named that way instead: the
    app's form says "hidden must be at least 1" where the CLI says "--hidden must be ...".
    Flags not in `names` stay as they are."""
    return _FLAG.sub(lambda m: names.get(m.group(1).replace("-", "_"), m.group(0)), message)


@dataclass(frozen=True)
class SettingHelp:
    """What a setting means, from its TrainConfig field: `help` is the CLI's --help text (a front
    end's one-line description), `more` the longer explanation."""
    name: str
    flag: str
    help: str
    more: str
    default: object


def setting_help(name: str) -> SettingHelp | None:
    for f in dataclasses.fields(TrainConfig):
        if f.name == name and "help" in f.metadata:
            return SettingHelp(name, flag_of(name), f.metadata["help"], f.metadata.get("more", ""), f.default)
    return None


def value_parser(field: dataclasses.Field):
    """What turns a setting's text (a flag's, a form field's) into its value: its type, or for --embed
    embed_from_text (a size, or onehot)."""
    return embed_from_text if field.name == "embed" else field_type(field)


def _parse(name: str, text: str):
    if name == "threads":
        return threads_from_text(text)
    if name == "embed":
        return embed_from_text(text)
    kind = _field_type(name)
    text = text.strip().replace("_", "")
    if kind is str:
        return text
    if not text:
        raise ConfigError(f"{flag_of(name)} is empty; enter a value.")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{flag_of(name)} must be {'a whole number' if kind is int else 'a number'}, "
                          f"got '{text}'.") from None


def check_settings(values: Mapping[str, str], *, budget_kind: str = "minutes", budget: str = "",
                   base: TrainConfig | None = None, resume_step: int | None = None) -> SettingsCheck:
    """Check form text field by field with the engine's own validation, so each error can be shown
    beside its field. `values` maps TrainConfig field names (hidden, lr, ...) to text; other
    settings (corpus, cell, device) are taken as they are. `resume_step` is the step of a run
    being resumed: a step budget must then go beyond it."""
    base = base or TrainConfig()
    errors: dict[str, str] = {}
    parsed: dict = {}
    for name, text in values.items():
        try:
            value = _parse(name, text) if isinstance(text, str) and _field_type(name) in (int, float) else text
            dataclasses.replace(base, **{name: value}).validate()
            parsed[name] = value
        except (ConfigError, TypeError) as exc:
            errors[name] = str(exc)
    if budget_kind not in BUDGET_KINDS:
        errors["budget"] = f"Budget must be one of {', '.join(BUDGET_KINDS)}."
    else:
        try:
            value = _parse(budget_kind, budget)
            if budget_kind == "steps":
                value = int(value)
            budget_fields = {"steps": None, "epochs": None, "minutes": None, budget_kind: value}
            dataclasses.replace(base, **budget_fields).validate()
            if budget_kind == "steps" and resume_step is not None and value <= resume_step:
                raise ConfigError(f"The run is at step {resume_step}; a step budget (a total) must be above it.")
            parsed.update(budget_fields)
        except ConfigError as exc:
            errors["budget"] = str(exc)
    if errors:
        return SettingsCheck(None, errors)
    config = dataclasses.replace(base, **parsed)
    try:
        config.validate()
    except ConfigError as exc:
        return SettingsCheck(None, {"form": str(exc)})
    return SettingsCheck(config, {})


@dataclass(frozen=True)
class CorpusCheck:
    ok: bool
    message: str           # the engine's error, or a short description of what will be used
    chars: int | None = None
    field: str = "corpus"  # the setting at fault when not ok: corpus, or batch or seq for a text too small


_corpus_cache: dict[tuple, Corpus] = {}
_corpus_lock = threading.Lock()


def _corpus_key(spec: str, glob: str) -> tuple:
    path = Path(spec).expanduser()
    try:
        stat = path.stat()
        return spec, glob, stat.st_mtime_ns, stat.st_size
    except OSError:
        return spec, glob, None, None


def check_corpus(spec: str, *, glob: str = "*", batch: int = 64, seq: int = 100,
                 val_fraction: float = 0.1) -> CorpusCheck:
    """Whether a corpus spec would train with this batch and sequence length, with the engine's
    own errors. Named corpora not yet downloaded are not fetched (they download on start).
    Loaded texts are cached, so checking again as batch or seq change is instant."""
    spec = spec.strip()
    if not spec:
        return CorpusCheck(False, f"Enter a corpus: {BUILTIN_STDLIB}, {', '.join(REMOTE_CORPORA)}, "
                                  "or a path to a UTF-8 text file or folder.")
    remote = REMOTE_CORPORA.get(spec)
    if remote is not None and not Path(spec).exists():
        cached = cache_dir() / remote.filename
        if not (cached.is_file() and cached.stat().st_size == remote.size):
            return CorpusCheck(True, f"{spec}: downloads {remote.size / 1e6:.1f} MB on start", None)
    key = _corpus_key(spec, glob)
    try:
        with _corpus_lock:
            corpus = _corpus_cache.get(key)
        if corpus is None:
            corpus = load_corpus(spec, glob=glob)
            with _corpus_lock:
                if len(_corpus_cache) >= 4:
                    _corpus_cache.pop(next(iter(_corpus_cache)))
                _corpus_cache[key] = corpus
    except PlaygroundError as exc:
        return CorpusCheck(False, str(exc))
    except OSError as exc:
        return CorpusCheck(False, f"Cannot read {spec}: {exc.strerror or exc}.")
    try:
        check_size(corpus, batch, seq, val_fraction)
    except PlaygroundError as exc:
        return CorpusCheck(False, str(exc), corpus.length, _too_small_for(corpus, seq, val_fraction))
    skipped = f"; skipped {len(corpus.warnings)} unreadable folder(s)" if corpus.warnings else ""
    return CorpusCheck(True, f"{corpus.source}: {corpus.length:,} characters{skipped}", corpus.length)


def _too_small_for(corpus: Corpus, seq: int, val_fraction: float) -> str:
    """Which setting to mark when a text is too small for batch x seq: batch when a batch of one
    would fit, else seq when a window of one character would, else the corpus itself."""
    chars = corpus.length
    if chars and chars >= minimum_chars(1, seq, val_fraction):
        return "batch"
    if chars and chars >= minimum_chars(1, 1, val_fraction):
        return "seq"
    return "corpus"


def config_form_values(config: TrainConfig | Mapping) -> dict[str, str]:
    """A config as the text a settings form shows (the inverse of check_settings)."""
    data = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    defaults = TrainConfig().to_dict()
    out = {name: _format_value(data.get(name, defaults[name])) for name in FORM_FIELDS}
    if data.get("threads") is None:
        out["threads"] = AUTO
    out["embed"] = embed_text(data.get("embed", defaults["embed"]))
    out["corpus"] = str(data.get("corpus", defaults["corpus"]))
    out["cell"] = str(data.get("cell", defaults["cell"]))
    out["device"] = str(data.get("device", defaults["device"]))
    kind, value = budget_of(data)
    out["budget_kind"], out["budget"] = kind, _format_value(value)
    return out


def budget_of(config: TrainConfig | Mapping) -> tuple[str, float | int]:
    """(kind, value) of a config's budget; the trainer's default (minutes) when none is set."""
    from rnn_playground.core.config import DEFAULT_MINUTES
    data = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    for kind in ("steps", "epochs", "minutes"):
        if data.get(kind) is not None:
            return kind, data[kind]
    return "minutes", DEFAULT_MINUTES


def _format_value(value) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value)) if value >= 1 else repr(value)
        return f"{value:g}"
    return str(value)
