"""Time-series data: seeded signals, CSV parsing and every bad input, the split, standardization."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_playground.core.errors import PlaygroundError
from rnn_playground.core.series_data import (
    SIGNALS,
    Normalizer,
    SeriesError,
    generate_signal,
    load_csv,
    load_signal,
    natural_period,
    parse_freqs,
    split_point,
)

# --------------------------------------------------------------------------- signals

@pytest.mark.parametrize("name", SIGNALS)
def test_signals_are_deterministic_with_a_seed(name):
    a = generate_signal(name, 500, seed=3)
    b = generate_signal(name, 500, seed=3)
    assert a.shape == (500,) and a.dtype == np.float64 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    if name in ("noisy-sine", "random-walk", "sines"):  # these draw noise or phases from the seed
        assert not np.array_equal(a, generate_signal(name, 500, seed=4))
    # a longer series starts with the shorter one, so the "true continuation" is well defined
    assert np.array_equal(generate_signal(name, 700, seed=3)[:500], a) or name in ("noisy-sine", "random-walk", "sines")


def test_sine_is_the_courses_windows():
    # The course: time_steps = np.linspace(step*pi, (step+1)*pi, 21); data = sin(time_steps);
    # x = data[:-1], y = data[1:]. Consecutive windows share their end points.
    series = generate_signal("sine", 75 * 20 + 1)
    for step in (0, 1, 37, 74):
        course = np.sin(np.linspace(step * np.pi, (step + 1) * np.pi, 21))
        window = series[step * 20:step * 20 + 21]
        np.testing.assert_allclose(window, course, atol=1e-12)
        np.testing.assert_allclose(window[:-1], course[:-1], atol=1e-12)  # input
        np.testing.assert_allclose(window[1:], course[1:], atol=1e-12)    # target: the next point


def test_signal_shapes_and_settings():
    square = generate_signal("square", 200)
    assert set(square) == {-1.0, 1.0}
    assert list(square[:20]) == [1.0] * 20 and list(square[20:40]) == [-1.0] * 20
    assert np.array_equal(square[:40], square[40:80])
    damped = generate_signal("damped", 3000)
    assert np.abs(damped[:100]).max() > 0.9 and np.abs(damped[-100:]).max() < 0.06
    walk = generate_signal("random-walk", 5000, noise=0.5, seed=1)
    assert walk[0] == 0.0 and abs(np.diff(walk).std() - 0.5) < 0.03
    noisy = generate_signal("noisy-sine", 5000, seed=2) - generate_signal("sine", 5000)
    assert abs(noisy.std() - 0.1) < 0.01
    assert np.array_equal(generate_signal("sine", 100, noise=0.0), generate_signal("sine", 100))
    fast = generate_signal("sine", 100, freqs=(2.0,))
    np.testing.assert_allclose(fast[:20], fast[20:40], atol=1e-12)
    sines = generate_signal("sines", 400, freqs=(1.0, 3.0), seed=0)
    assert np.abs(sines).max() <= 1.5 + 1e-9


@pytest.mark.parametrize("name", ["sine", "noisy-sine", "damped", "square"])
def test_one_frequency_signals_refuse_several(name):
    assert not np.array_equal(generate_signal(name, 100, freqs=(2.0,)), generate_signal(name, 100))
    with pytest.raises(SeriesError, match=rf"--freqs gives 2 frequencies, but the '{name}' signal has one\. "
                                          r".*use --signal sines for a sum"):
        generate_signal(name, 100, freqs=(1.0, 2.0))


def test_random_walk_takes_no_freqs():
    with pytest.raises(SeriesError, match="'random-walk' signal has no frequency, so it takes no --freqs"):
        generate_signal("random-walk", 100, freqs=(2.0,))
    assert generate_signal("sines", 100, freqs=(1.0, 2.0, 4.0)).shape == (100,)


def test_natural_period():
    assert natural_period("sine") == 40
    assert natural_period("sine", (2.0,)) == 20 and natural_period("square", (0.5,)) == 80
    assert natural_period("sine", (3.0,)) is None  # 13.33 points: not a whole number
    assert natural_period("sines") is None and natural_period("random-walk") is None
    assert load_signal("noisy-sine", 100).period == 40


def test_signal_errors():
    with pytest.raises(SeriesError, match="Unknown signal 'cosine'.*sine, sines"):
        generate_signal("cosine", 100)
    with pytest.raises(SeriesError, match="--length must be at least 2"):
        generate_signal("sine", 1)
    with pytest.raises(SeriesError, match="--noise must be zero or positive"):
        generate_signal("sine", 10, noise=-1)
    assert parse_freqs("1, 2.5") == (1.0, 2.5) and parse_freqs(None) is None and parse_freqs("") is None
    with pytest.raises(SeriesError, match="comma-separated numbers"):
        parse_freqs("1,fast")
    with pytest.raises(SeriesError, match="positive"):
        parse_freqs("1,-2")
    assert issubclass(SeriesError, PlaygroundError)


# --------------------------------------------------------------------------- CSV

def write(tmp_path, text: str, name: str = "data.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_csv_by_name_index_and_inputs(tmp_path):
    path = write(tmp_path, "date,temp,humidity\n2020-01-01,1.5,30\n2020-01-02,2.5,31\n2020-01-03,-3e-1,32\n")
    data = load_csv(path, "temp")
    assert data.names == ("temp",) and data.values.shape == (3, 1)
    assert list(data.target) == [1.5, 2.5, -0.3]
    assert data.source == str(path) and len(data.fingerprint) == 64
    assert np.array_equal(load_csv(path, "1").values, data.values)
    assert np.array_equal(load_csv(path, 1).values, data.values)
    both = load_csv(path, "humidity", "temp")
    assert both.names == ("humidity", "temp") and both.values.tolist() == [[30, 1.5], [31, 2.5], [32, -0.3]]
    assert load_csv(path, -1, ["1"]).names == ("humidity", "temp")
    # default target: the only numeric column... here there are two, so it must be named
    with pytest.raises(SeriesError, match=r"has 3 columns \(date, temp, humidity\): pick the target with --column"):
        load_csv(path)


def test_csv_headers_delimiters_blank_lines_bom(tmp_path):
    plain = load_csv(write(tmp_path, "1\n2\n\n3\n\n"))
    assert plain.values[:, 0].tolist() == [1, 2, 3] and plain.names == ("column 0",)
    assert load_csv(write(tmp_path, "v\n1\n2\n")).names == ("v",)
    semi = load_csv(write(tmp_path, "a;b\n1;10\n2;20\n"), "b")
    assert semi.target.tolist() == [10, 20]
    tabs = load_csv(write(tmp_path, "a\tb\n1\t10\n2\t20\n"), "a", "b")
    assert tabs.values.tolist() == [[1, 10], [2, 20]]
    bom = load_csv(write(tmp_path, "\ufeffvalue,other\n1,x\n2,y\n", encoding="utf-8"))
    assert bom.names == ("value",) and bom.target.tolist() == [1, 2]  # the only numeric column is the default
    forced = load_csv(write(tmp_path, "5,6\n1,2\n3,4\n"), 1, header="yes")
    assert forced.names == ("6",) and forced.target.tolist() == [2, 4]
    none = load_csv(write(tmp_path, "5,6\n1,2\n3,4\n"), 0, header="no")
    assert none.target.tolist() == [5, 1, 3]
    with pytest.raises(SeriesError, match="no header row, so --column must be a 0-based column index"):
        load_csv(write(tmp_path, "5,6\n1,2\n"), "value")
    with pytest.raises(SeriesError, match="--header must be auto, yes or no"):
        load_csv(write(tmp_path, "1\n2\n"), header="maybe")


def test_csv_header_detection(tmp_path):
    # A headerless file whose first column is a date keeps its first row, with numbered columns.
    dated = load_csv(write(tmp_path, "2020-01-01,1.5\n2020-01-02,2.5\n2020-01-03,3.5\n"))
    assert dated.header_line is None and dated.names == ("column 1",) and dated.target.tolist() == [1.5, 2.5, 3.5]
    # A header of names over a date column and a number column is a header.
    named = load_csv(write(tmp_path, "\n\ndate,value\n2020-01-01,1.5\n2020-01-02,2.5\n"))
    assert named.header_line == 3 and named.names == ("value",) and named.target.tolist() == [1.5, 2.5]
    # All-text header rows over numbers, one column or several.
    assert load_csv(write(tmp_path, "time,temp,humidity\n0,1.5,30\n1,2.5,31\n"), "temp", "humidity").names == \
        ("temp", "humidity")
    assert load_csv(write(tmp_path, "Sales (EUR)\n10\n12\n")).header_line == 1
    # A bad value in the first row of a headerless file is reported at its line, not taken as a header.
    with pytest.raises(SeriesError, match=r"1 row with .*: line 1, column 'column 1' holds 'n/a'") as error:
        load_csv(write(tmp_path, "2020-01-01,n/a\n2020-01-02,2.5\n2020-01-03,3.5\n"))
    assert "--header yes" not in str(error.value)
    with pytest.raises(SeriesError, match=r"line 1, column 'column 0' holds 'NA'"):
        load_csv(write(tmp_path, "NA\n1\n2\n"))
    assert load_csv(write(tmp_path, "NA\n1\n2\n"), drop_bad_rows=True).dropped_lines == (1,)
    assert load_csv(write(tmp_path, "1,n/a\n2,3\n3,4\n"), 1, drop_bad_rows=True).target.tolist() == [3, 4]
    # A name shaped like the text below it cannot be told from data: the error says how to take it as a header.
    codes = write(tmp_path, "code,v\nabcd,1\nefgh,2\n")
    with pytest.raises(SeriesError, match=r"line 1, column 'column 1' holds 'v'.*If line 1 is a header row, "
                                          r"pass --header yes\."):
        load_csv(codes)
    assert load_csv(codes, "v", header="yes").target.tolist() == [1, 2]
    # --header no keeps a text first row as data (and so reports it).
    with pytest.raises(SeriesError, match=r"line 1, column 'column 0' holds 'value'"):
        load_csv(write(tmp_path, "value\n1\n2\n"), header="no")


def test_csv_bad_rows_are_reported_with_line_numbers(tmp_path):
    path = write(tmp_path, "t,value,x\n0,1.0,5\n1,abc,5\n2,,5\n3\n\n4,nan,5\n5,2.0,oops\n6,3.0,5\n")
    with pytest.raises(SeriesError) as error:
        load_csv(path, "value")
    message = str(error.value)
    assert str(path) in message and "4 rows with missing or non-numeric values" in message
    assert "line 3, column 'value' holds 'abc', not a finite number" in message
    assert "line 4, column 'value' is empty" in message
    assert "line 5, column 'value' is missing" in message
    assert "line 7, column 'value' holds 'nan'" in message
    assert "--drop-bad-rows" in message
    # line 8 is bad only in x, which is not used unless asked for
    data = load_csv(path, "value", drop_bad_rows=True)
    assert data.target.tolist() == [1.0, 2.0, 3.0] and data.dropped_lines == (3, 4, 5, 7)
    with_x = load_csv(path, "value", "x", drop_bad_rows=True)
    assert with_x.values.tolist() == [[1.0, 5], [3.0, 5]] and with_x.dropped_lines == (3, 4, 5, 7, 8)
    with pytest.raises(SeriesError, match=r"5 rows .*line 5, column 'x' is missing.*\(and 1 more problem\)"):
        load_csv(path, "value", "x")
    with pytest.raises(SeriesError, match="1 row with .* line 8, column 'x' holds 'oops'"):
        load_csv(write(tmp_path, "value,x\n1,2\n2,3\n3,4\n4,5\n5,6\n6,7\n7,oops\n"), "value", "x")


def test_csv_many_bad_rows_are_summarised(tmp_path):
    path = write(tmp_path, "v\n" + "x\n" * 12 + "1\n2\n")
    with pytest.raises(SeriesError, match=r"12 rows .*line 2, .*line 6, .*\(and 7 more problems\)"):
        load_csv(path)
    with pytest.raises(SeriesError, match="every data row has missing or non-numeric values"):
        load_csv(write(tmp_path, "v\nx\ny\n", "bad.csv"), drop_bad_rows=True)


@pytest.mark.parametrize("text, pattern", [
    ("", r"is empty\. A series CSV needs"),
    ("  \n\n \n", r"is empty"),
    ("value\n", r"has a header row \(line 1\) but no data rows"),
    ("value\n\n3.5\n", r"has only one data row \(line 3\)"),
    ("4.5\n", r"has only one data row \(line 1\)"),
    ("date,value\n2020-01-01,4.5\n", r"has only one data row \(line 2\)"),
    ("v\n1\nx\n", r"has only one data row \(after dropping bad rows\)"),
])
def test_csv_too_little_data(tmp_path, text, pattern):
    path = write(tmp_path, text)
    with pytest.raises(SeriesError, match=pattern) as error:
        load_csv(path, drop_bad_rows=True)
    assert str(path) in str(error.value)


def test_csv_missing_columns_and_files(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,4\n")
    with pytest.raises(SeriesError, match=r"has no column named 'c'; its columns are: a, b\. Pass one"):
        load_csv(path, "c")
    with pytest.raises(SeriesError, match=r"--column 5 is out of range: .* has 2 columns \(indices 0 to 1\)"):
        load_csv(path, 5)
    with pytest.raises(SeriesError, match=r"--inputs 7 is out of range"):
        load_csv(path, "a", "7")
    with pytest.raises(SeriesError, match="--inputs names the target column 'a'"):
        load_csv(path, "a", "a")
    with pytest.raises(SeriesError, match="--inputs names column 'b' twice"):
        load_csv(path, "a", "b,1")
    with pytest.raises(SeriesError, match=r"No CSV file at .*nope\.csv"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(SeriesError, match="is a folder"):
        load_csv(tmp_path)
    with pytest.raises(SeriesError, match=r"line 3 is not UTF-8 text"):
        load_csv(write(tmp_path, b"v\n1\n\xff\xfe2\n", "latin.csv"))


# --------------------------------------------------------------------------- split and standardization

def test_split_by_time():
    assert split_point(2000, 0.2) == 1600
    assert split_point(10, 0.0) == 10
    assert split_point(10, 0.01) == 9  # a positive fraction keeps at least one validation point
    assert split_point(7, 0.5) == 3


def test_normalization_fits_training_part_and_round_trips():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(5, 3, 100), rng.normal(-2, 0.5, 100), np.full(100, 7.0)])
    train = values[:80]
    norm = Normalizer.fit(train)
    assert np.allclose(norm.mean, train.mean(axis=0)) and np.allclose(norm.std[:2], train.std(axis=0)[:2])
    assert norm.std[2] == 1.0  # a constant feature keeps its scale instead of dividing by zero
    z = norm.transform(values)
    assert np.allclose(z[:80, :2].mean(axis=0), 0) and np.allclose(z[:80, :2].std(axis=0), 1)
    assert not np.allclose(z[80:, 0].mean(), 0)  # the validation part did not take part in the fit
    np.testing.assert_allclose(norm.inverse(z), values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(norm.inverse_target(z[:, 0]), values[:, 0], atol=1e-12)
    again = Normalizer.from_dict(norm.to_dict())
    assert again == norm
    with pytest.raises(SeriesError, match="unreadable"):
        Normalizer.from_dict({"mean": [1.0]})
    assert math.isclose(Normalizer.fit(np.arange(5.0)).mean[0], 2.0)
