"""Time-series data: seeded built-in signals, CSV files, the time split and standardization.

Values are kept in original units as float64 arrays shaped (points, features); feature 0 is
the target, any others are extra inputs read from the same rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import PlaygroundError


class SeriesError(PlaygroundError):
    """Time-series data or settings are unusable."""


SIGNALS = ("sine", "sines", "damped", "noisy-sine", "square", "random-walk")
COURSE_DT = math.pi / 20          # the course: np.linspace(step*pi, (step+1)*pi, 21) -> 20 steps per pi
COURSE_WINDOW = 20
DAMPING_POINTS = 1000.0           # `damped` loses a factor e every this many points
DEFAULT_NOISE = {"sine": 0.0, "sines": 0.0, "damped": 0.0, "noisy-sine": 0.1, "square": 0.0, "random-walk": 0.1}
DEFAULT_FREQS = {"sines": (1.0, 1.7, 3.1)}
MAX_PROBLEMS_SHOWN = 5


# --------------------------------------------------------------------------- the data

@dataclass
class SeriesData:
    values: np.ndarray                  # (points, features) float64, original units; column 0 is the target
    names: tuple[str, ...]              # feature names, target first
    source: str                         # where the data came from, for messages ("signal sine", a path)
    period: int | None = None           # the signal's own period in points, where it has one
    dropped_lines: tuple[int, ...] = ()  # CSV lines skipped with --drop-bad-rows
    fingerprint: str = ""
    header_line: int | None = None      # the CSV line read as the header row (None: no header row, or a signal)

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim == 1:
            self.values = self.values[:, None]
        if not self.fingerprint:
            self.fingerprint = hashlib.sha256(self.values.tobytes()).hexdigest()

    @property
    def points(self) -> int:
        return len(self.values)

    @property
    def features(self) -> int:
        return self.values.shape[1]

    @property
    def target(self) -> np.ndarray:
        return self.values[:, 0]


# --------------------------------------------------------------------------- built-in signals

def parse_freqs(text: str | None) -> tuple[float, ...] | None:
    """'1, 2.5' -> (1.0, 2.5); None or '' -> None."""
    if text is None or not str(text).strip():
        return None
    try:
        freqs = tuple(float(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise SeriesError(f"--freqs must be comma-separated numbers such as '1,1.7,3.1', got {text!r}.") from None
    if not freqs or not all(math.isfinite(f) and f > 0 for f in freqs):
        raise SeriesError(f"--freqs must be positive numbers, got {text!r}.")
    return freqs


def signal_freqs(name: str, freqs: tuple[float, ...] | None) -> tuple[float, ...]:
    return freqs if freqs else DEFAULT_FREQS.get(name, (1.0,))


def check_freqs(name: str, freqs: tuple[float, ...] | None) -> None:
    """Refuse frequencies a signal would ignore: random-walk has none, and only `sines` sums several."""
    if not freqs:
        return
    if name == "random-walk":
        raise SeriesError("The 'random-walk' signal has no frequency, so it takes no --freqs. Leave --freqs out, "
                          "or pick a periodic signal such as --signal sine.")
    if name != "sines" and len(freqs) > 1:
        raise SeriesError(f"--freqs gives {len(freqs)} frequencies, but the '{name}' signal has one. Give a single "
                          "frequency, or use --signal sines for a sum of sines.")


def signal_noise(name: str, noise: float | None) -> float:
    return DEFAULT_NOISE[name] if noise is None else float(noise)


def check_signal(name: str) -> None:
    if name not in SIGNALS:
        raise SeriesError(f"Unknown signal '{name}'. Built-in signals: {', '.join(SIGNALS)}; "
                          "or read a file with --csv FILE.")


def generate_signal(name: str, length: int, *, noise: float | None = None,
                    freqs: tuple[float, ...] | None = None, seed: int = 0) -> np.ndarray:
    """A built-in signal of `length` points, the same for the same arguments.

    Time advances pi/20 per point, as in the course (np.linspace(step*pi, (step+1)*pi, 21)),
    so sin(f*t) repeats every 40/f points. `noise` is the standard deviation of Gaussian
    noise added to every point (for random-walk: of each step).
    """
    check_signal(name)
    if length < 2:
        raise SeriesError(f"--length must be at least 2 points, got {length}.")
    noise = signal_noise(name, noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise SeriesError(f"--noise must be zero or positive, got {noise}.")
    check_freqs(name, freqs)
    freqs = signal_freqs(name, freqs)
    rng = np.random.default_rng(seed)
    i = np.arange(length, dtype=np.float64)
    t = i * COURSE_DT
    f = freqs[0]
    if name == "random-walk":
        steps = rng.normal(0.0, noise, length)
        steps[0] = 0.0
        return np.cumsum(steps)
    if name in ("sine", "noisy-sine"):
        clean = np.sin(f * t)
    elif name == "sines":
        phases = rng.uniform(0.0, 2 * math.pi, len(freqs))
        clean = sum(np.sin(fk * t + phase) / (k + 1) for k, (fk, phase) in enumerate(zip(freqs, phases, strict=True)))
    elif name == "damped":
        clean = np.exp(-i / DAMPING_POINTS) * np.sin(f * t)
    else:  # square: +1 on the first half of each period, -1 on the second (exact, no rounding at zero)
        clean = np.where(np.floor(i * f / 20 + 1e-9) % 2 == 0, 1.0, -1.0)
    if noise:
        clean = clean + rng.normal(0.0, noise, length)
    return np.asarray(clean, dtype=np.float64)


def natural_period(name: str, freqs: tuple[float, ...] | None = None) -> int | None:
    """The period in points of a single-frequency built-in signal when it is a whole number."""
    if name not in ("sine", "noisy-sine", "damped", "square"):
        return None
    points = 2 * math.pi / (signal_freqs(name, freqs)[0] * COURSE_DT)
    if not math.isfinite(points):  # a frequency so low that its period overflows: none to speak of
        return None
    whole = round(points)
    return whole if whole >= 2 and abs(points - whole) < 1e-6 else None


def load_signal(name: str, length: int, *, noise: float | None = None, freqs: tuple[float, ...] | None = None,
                seed: int = 0) -> SeriesData:
    values = generate_signal(name, length, noise=noise, freqs=freqs, seed=seed)
    return SeriesData(values, (name,), f"signal {name}", period=natural_period(name, freqs))


# --------------------------------------------------------------------------- CSV files

def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_number(text: str) -> bool:
    return _number(text.strip()) is not None


MISSING_MARKERS = frozenset({"na", "n/a", "#n/a", "nan", "null", "none", "-", "?", "inf", "-inf", "+inf"})
HEADER_SAMPLE_ROWS = 20  # rows below the first that header detection and the default target look at


def _is_value_like(text: str) -> bool:
    """A field that reads as a data value, even an unusable one: any number (nan, inf) or a missing-value
    marker such as n/a, NA, null or -. A header name is none of these."""
    text = text.strip()
    if text.lower() in MISSING_MARKERS:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _shape(text: str) -> str:
    """Digits as 9 and letters as a: '2020-01-31' -> '9999-99-99'."""
    return re.sub(r"[^\W\d_]", "a", re.sub(r"\d", "9", text.strip()))


def _column_fields(rows: list[list[str]], index: int) -> list[str]:
    return [fields[index].strip() for fields in rows if index < len(fields) and fields[index].strip()]


def _holds_numbers(rows: list[list[str]], index: int) -> bool:
    return any(_is_number(f) for f in _column_fields(rows, index))


def _detect_header(rows: list[list[str]]) -> bool:
    """Is the first row a header? Only when none of its fields reads as a value (a number, nan, n/a, ...),
    and the columns below agree, in the spirit of csv.Sniffer: a column holding numbers under a name
    votes for a header; a text column whose fields all share one shape (dates, codes) votes against
    when the first field has that shape too. A lone row of names is a header (with no data)."""
    first, below = rows[0], rows[1:1 + HEADER_SAMPLE_ROWS]
    if any(f.strip() and _is_value_like(f) for f in first):
        return False
    if not below:
        return True
    votes = 0
    for index, name in enumerate(first):
        column = _column_fields(below, index)
        if not name.strip() or not column:
            continue
        if _holds_numbers(below, index):
            votes += 1
        elif len({_shape(f) for f in column}) == 1 and _shape(name) == _shape(column[0]):
            votes -= 1
    return votes > 0


@dataclass
class _Problem:
    line: int
    column: str
    what: str


def _resolve_column(spec: str | int, names: list[str], has_header: bool, path: Path, flag: str) -> int:
    text = str(spec).strip()
    if has_header and text in names:
        return names.index(text)
    try:
        index = int(text)
    except ValueError:
        if not has_header:
            raise SeriesError(f"{path} has no header row, so {flag} must be a 0-based column index "
                              f"(0 to {len(names) - 1}), not {text!r}.") from None
        raise SeriesError(f"{path} has no column named {text!r}; its columns are: {', '.join(names)}. "
                          f"Pass one of these names, or a 0-based index, to {flag}.") from None
    if -len(names) <= index < len(names):
        return index % len(names)
    raise SeriesError(f"{flag} {index} is out of range: {path} has {len(names)} column"
                      f"{'s' if len(names) != 1 else ''} (indices 0 to {len(names) - 1}).")


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SeriesError(f"No CSV file at {path}. Check the path given to --csv.") from None
    except IsADirectoryError:
        raise SeriesError(f"{path} is a folder; --csv needs a CSV file.") from None
    except OSError as exc:
        raise SeriesError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SeriesError(f"{path} line {line} is not UTF-8 text (byte {raw[exc.start]:#04x}). "
                          "Save the file as UTF-8 CSV.") from None


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


TRAIN_FLAGS = ("--drop-bad-rows", "--header")  # the CSV flags an error may suggest, where the command has them


def _excerpt(text: str, limit: int = 24) -> str:
    """A field as shown in a message: at most `limit` characters of it."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def load_csv(path: str | Path, column: str | int | None = None, inputs: str | list | tuple | None = None, *,
             header: str = "auto", drop_bad_rows: bool = False, delimiter: str | None = None,
             flags: tuple[str, ...] = TRAIN_FLAGS) -> SeriesData:
    """Read a series from a CSV file.

    column: the target, a header name or a 0-based index (negative counts from the end);
    default: the only column, or the only one holding numbers. inputs: extra input columns (names
    or indices, a list or a comma-separated string). header: 'auto' (see _detect_header), 'yes'
    or 'no'; the result's header_line says which line was taken as the header. Rows whose used
    fields are empty or not finite numbers are an error listing their line numbers, or are
    skipped with drop_bad_rows. `flags`: the flags of the command reading the file that its errors
    may suggest (of TRAIN_FLAGS).
    """
    path = Path(path)
    if header not in ("auto", "yes", "no"):
        raise SeriesError(f"--header must be auto, yes or no, got {header!r}.")
    text = _decode(path)
    if not text.strip():
        raise SeriesError(f"{path} is empty. A series CSV needs one number per row in at least one column.")
    delimiter = delimiter or _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []  # (the line a row starts on, its fields)
    ends: dict[int, int] = {}                # rows running over several lines (a quoted newline): start -> end
    previous = 0
    try:
        for fields in reader:
            start, previous = previous + 1, reader.line_num
            if any(f.strip() for f in fields):  # blank lines are not rows
                rows.append((start, fields))
                if previous > start:
                    ends[start] = previous
    except csv.Error as exc:
        raise SeriesError(f"{path} line {previous + 1} is not valid CSV: {exc}.") from None
    if not rows:
        raise SeriesError(f"{path} is empty. A series CSV needs one number per row in at least one column.")
    first = rows[0][1]
    has_header = header == "yes" or (header == "auto" and _detect_header([fields for _, fields in rows]))
    if has_header:
        names = [f.strip() or f"column {i}" for i, f in enumerate(first)]
        data_rows = rows[1:]
        if not data_rows:
            raise SeriesError(f"{path} has a header row (line {rows[0][0]}) but no data rows.")
    else:
        names = [f"column {i}" for i in range(len(first))]
        data_rows = rows
    width = max(len(names), max(len(r) for _, r in data_rows))
    names += [f"column {i}" for i in range(len(names), width)]

    if column is None or str(column).strip() == "":
        if width == 1:
            target = 0
        else:
            sample = [fields for _, fields in data_rows[:HEADER_SAMPLE_ROWS + 1]]
            numeric = [i for i in range(width) if _holds_numbers(sample, i)]
            if len(numeric) != 1:
                raise SeriesError(f"{path} has {width} columns ({', '.join(names)}): pick the target with "
                                  "--column NAME or a 0-based index.")
            target = numeric[0]
    else:
        target = _resolve_column(column, names, has_header, path, "--column")
    if isinstance(inputs, str):
        inputs = [part for part in inputs.split(",") if part.strip()]
    extra = [_resolve_column(spec, names, has_header, path, "--inputs") for spec in (inputs or ())]
    used = [target] + extra
    for index in extra:
        if index == target:
            raise SeriesError(f"--inputs names the target column {names[index]!r}; the target is always an "
                              "input already. Leave it out of --inputs.")
        if used.count(index) > 1:
            raise SeriesError(f"--inputs names column {names[index]!r} twice.")

    values = np.empty((len(data_rows), len(used)), dtype=np.float64)
    problems: list[_Problem] = []
    bad_rows: set[int] = set()
    for r, (line, fields) in enumerate(data_rows):
        for c, index in enumerate(used):
            raw = fields[index].strip() if index < len(fields) else None
            if raw is None or raw == "":
                problems.append(_Problem(line, names[index], "is missing" if raw is None else "is empty"))
                bad_rows.add(r)
                continue
            value = _number(raw)
            if value is None and line in ends and ("\n" in raw or "\r" in raw):
                problems.append(_Problem(line, names[index], f"opens a quote (\") that is not closed before line "
                                         f"{ends[line]} ({_excerpt(raw)}); close or remove the quote"))
            elif value is None:
                problems.append(_Problem(line, names[index], f"holds {_excerpt(raw)}, not a finite number"))
                bad_rows.add(r)
                continue
            values[r, c] = value
    dropped: tuple[int, ...] = ()
    if problems:
        if not drop_bad_rows:
            shown = "; ".join(f"line {p.line}, column {p.column!r} {p.what}" for p in problems[:MAX_PROBLEMS_SHOWN])
            hidden = len(problems) - MAX_PROBLEMS_SHOWN
            more = f" (and {hidden} more problem{'s' if hidden != 1 else ''})" if hidden > 0 else ""
            first_line = rows[0][0]
            header_hint = (f" If line {first_line} is a header row, pass --header yes."
                           if "--header" in flags and header == "auto" and not has_header
                           and problems[0].line == first_line
                           and not any(f.strip() and _is_value_like(f) for f in first) else "")
            fix = ("Fix them, or pass --drop-bad-rows to skip those rows." if "--drop-bad-rows" in flags
                   else "Fix them.")
            raise SeriesError(f"{path}: {len(bad_rows)} row{'s' if len(bad_rows) != 1 else ''} with missing or "
                              f"non-numeric values: {shown}{more}. {fix}{header_hint}")
        dropped = tuple(data_rows[r][0] for r in sorted(bad_rows))
        values = np.delete(values, sorted(bad_rows), axis=0)
        if len(values) == 0:
            raise SeriesError(f"{path}: every data row has missing or non-numeric values in the columns used "
                              f"({', '.join(names[i] for i in used)}), so nothing is left after dropping them.")
    if len(values) < 2:
        only = data_rows[0][0] if len(data_rows) == 1 else "after dropping bad rows"
        where = f"line {only}" if isinstance(only, int) else only
        raise SeriesError(f"{path} has only one data row ({where}); a series needs many rows, one per time step.")
    fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return SeriesData(values, tuple(names[i] for i in used), str(path), dropped_lines=dropped,
                      fingerprint=fingerprint, header_line=rows[0][0] if has_header else None)


# --------------------------------------------------------------------------- split and standardization

def split_point(points: int, val_fraction: float) -> int:
    """Index of the first validation point: the last `val_fraction` of the series (at least one
    point when the fraction is positive) is validation, the rest training. No shuffling."""
    if val_fraction <= 0:
        return points
    val = max(1, int(round(points * val_fraction)))
    return points - val


@dataclass(frozen=True)
class Normalizer:
    """Per-feature standardization fitted on the training part; stored with the checkpoint."""
    mean: tuple[float, ...]
    std: tuple[float, ...] = field(default=())

    @classmethod
    def fit(cls, values: np.ndarray, names: tuple[str, ...] = (), source: str = "the data",
            hint: str = "Rescale it (divide it by a power of ten) and start again.") -> Normalizer:
        """Mean and standard deviation per feature, in float64. Values so large that their spread
        overflows even float64 (around 1e154 and beyond) are refused, naming the column, rather than
        standardized to zeros."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, not warned
            mean = values.mean(axis=0)
            std = values.std(axis=0)
        for index in range(values.shape[1]):
            if not (math.isfinite(mean[index]) and math.isfinite(std[index])):
                name = names[index] if index < len(names) else f"column {index}"
                largest = float(np.max(np.abs(values[:, index]))) if len(values) else 0.0
                size = f"up to {largest:.3g} in size" if math.isfinite(largest) else "some of them infinite"
                raise SeriesError(f"{source}: column {name!r} cannot be standardized: its values ({size}) spread "
                                  f"too far for double precision. {hint}")
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)  # a constant feature: leave its scale
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def standardize(self, data: SeriesData) -> np.ndarray:
        """data.values standardized as float32 (what the model reads). A value the fit did not see
        (the validation part, another file) so far out that it overflows float32 is refused, naming it."""
        with np.errstate(over="ignore", invalid="ignore"):
            standardized = self.transform(data.values).astype(np.float32)
        bad = np.argwhere(~np.isfinite(standardized))
        if len(bad):
            row, column = (int(i) for i in bad[0])
            name = data.names[column] if column < len(data.names) else f"column {column}"
            raise SeriesError(f"{data.source}: column {name!r} holds {data.values[row, column]:.3g} at point {row}, "
                              f"too far out of the range the model was standardized for (mean "
                              f"{self.mean[column]:.3g}, spread {self.std[column]:.3g}) to compute with. Remove "
                              "or fix that value.")
        return standardized

    @property
    def features(self) -> int:
        return len(self.mean)

    def transform(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return (values - np.array(self.mean)) / np.array(self.std)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return values * np.array(self.std) + np.array(self.mean)

    def inverse_target(self, values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.std[0] + self.mean[0]

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> Normalizer:
        try:
            mean, std = [float(x) for x in data["mean"]], [float(x) for x in data["std"]]
        except (KeyError, TypeError, ValueError):
            raise SeriesError("The checkpoint's normalization statistics are unreadable.") from None
        if len(mean) != len(std) or not mean:
            raise SeriesError("The checkpoint's normalization statistics are inconsistent.")
        if not all(math.isfinite(m) for m in mean) or not all(math.isfinite(s) and s > 0 for s in std):
            raise SeriesError("The checkpoint's normalization statistics are not finite positive numbers.")
        return cls(tuple(mean), tuple(std))
