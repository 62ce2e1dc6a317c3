"""Beam search against exhaustive search and greedy decoding on tiny seeded models, stop conditions,
length normalisation, the generator form, and the CLI's `sample --beam`."""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
import torch

from rnn_playground.core.beam import beam_search, iter_beams
from rnn_playground.core.corpus import Vocab
from rnn_playground.core.errors import SamplingError
from rnn_playground.core.loading import load_model
from rnn_playground.core.model import CharRNN, ModelConfig
from rnn_playground.core.sampling import Sampler, SampleSettings, stop_rule
from rnn_playground.tui.cli.main import main

CELLS = ("lstm", "gru", "rnn")


def tiny_model(cell: str, vocab_size: int, seed: int = 0, hidden: int = 6) -> CharRNN:
    """Random weights, scaled up so that the next-character distributions are far from uniform (a
    near-uniform model would make every string about equally likely)."""
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, hidden=hidden, layers=2, embed=4, dropout=0.0))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(4.0)
    return model.eval()


def string_logprobs(model: CharRNN, vocab: Vocab, prime: str, strings: list[str]) -> torch.Tensor:
    """(len(strings), length) log-probabilities (nats, float64) of each character of each string after
    the prime, by the model's own forward over prime + string."""
    model = copy.deepcopy(model).double().eval()
    prime = prime or ("\n" if "\n" in vocab.index else vocab.chars[0])  # as the search starts
    ids = torch.stack([vocab.encode(prime + text) for text in strings])
    with torch.no_grad():
        logits, _ = model(ids[:, :-1])
    logprobs = logits.log_softmax(-1)[:, len(prime) - 1:]
    return logprobs.gather(-1, ids[:, len(prime):, None])[..., 0]


def exhaustive_best(model, vocab, prime, length, stop=None, alpha=0.0) -> tuple[str, float]:
    """The best hypothesis over every string of `length` characters: a string is cut where `stop`
    first matches (a finished hypothesis), else taken whole; scored logprob / len**alpha."""
    strings = ["".join(chars) for chars in itertools.product(vocab.chars, repeat=length)]
    per_char = string_logprobs(model, vocab, prime, strings)
    scored = {}
    for text, row in zip(strings, per_char.tolist(), strict=True):
        cut = next((k for k in range(1, length + 1) if stop is not None and stop(text[:k]) is not None), length)
        total = sum(row[:cut])
        scored[text[:cut]] = (total / cut ** alpha, total)
    best = max(scored, key=lambda text: scored[text][0])
    return best, scored[best][1]


def greedy(model: CharRNN, vocab: Vocab, prime: str, length: int) -> tuple[str, float]:
    """Argmax decoding by the model's own forward over the whole text each step (float64)."""
    text, total = "", 0.0
    for _ in range(length):
        row = string_logprobs_next(model, vocab, prime + text)
        token = int(row.argmax())
        text, total = text + vocab.chars[token], total + float(row[token])
    return text, total


def string_logprobs_next(model: CharRNN, vocab: Vocab, text: str) -> torch.Tensor:
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        logits, _ = model(vocab.encode(text).unsqueeze(0))
    return logits[0, -1].log_softmax(-1)


def first_stop(target: str, include: bool = True):
    """A substring stop: the end index after (include) or before the first `target`."""
    def stop(text: str) -> int | None:
        at = text.find(target)
        return None if at < 0 else at + len(target) if include else at
    return stop


# --------------------------------------------------------------------------- exactness

# Seeds where greedy decoding misses the most likely string, so the beam has something to find.
EXACT_SEEDS = {("lstm", "abc"): 5, ("lstm", "abcd"): 11, ("lstm", "ab\n"): 12, ("gru", "abc"): 14,
               ("gru", "abcd"): 3, ("gru", "ab\n"): 2, ("rnn", "abc"): 0, ("rnn", "abcd"): 17, ("rnn", "ab\n"): 1}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("letters", "length", "prime"), [("abc", 5, "ab"), ("abcd", 4, "d"), ("ab\n", 5, "")])
def test_a_wide_beam_finds_the_exhaustive_best(cell, letters, length, prime):
    vocab = Vocab(letters)
    model = tiny_model(cell, len(vocab), seed=EXACT_SEEDS[cell, letters])
    text, logprob = exhaustive_best(model, vocab, prime, length)
    assert greedy(model, vocab, prime or "\n", length)[1] < logprob - 0.1
    result = beam_search(model, vocab, prime, len(vocab) ** length, length)
    assert result.done and result.best.finished
    assert result.best.text == text
    assert result.best.logprob == pytest.approx(logprob, abs=1e-5)
    assert sum(result.best.char_logprobs()) == pytest.approx(logprob, abs=1e-5)
    assert len(result.best.char_logprobs()) == length
    expected = string_logprobs(model, vocab, prime, [text])[0].tolist()
    assert result.best.char_logprobs() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_width_one_is_greedy_and_a_wider_beam_is_no_worse(cell):
    vocab = Vocab("abcd")
    for seed in range(3):
        model = tiny_model(cell, len(vocab), seed=seed)
        text, logprob = greedy(model, vocab, "ba", 8)
        narrow = beam_search(model, vocab, "ba", 1, 8)
        assert narrow.best.text == text
        assert narrow.best.logprob == pytest.approx(logprob, abs=1e-5)
        assert narrow.runners_up == 0
        # Not a theorem for every model (beam search can prune the greedy path), but so for these.
        for width in (2, 4, 8):
            assert beam_search(model, vocab, "ba", width, 8).best.logprob >= logprob - 1e-6


def test_the_beams_differ_from_greedy_on_these_models():
    """The comparison above is not vacuous: on some of the models a beam finds a likelier text."""
    vocab = Vocab("abcd")
    better = 0
    for cell, seed in itertools.product(CELLS, range(3)):
        model = tiny_model(cell, len(vocab), seed=seed)
        better += beam_search(model, vocab, "ba", 8, 8).best.logprob > greedy(model, vocab, "ba", 8)[1] + 1e-4
    assert better >= 1


# --------------------------------------------------------------------------- stop conditions, length normalisation

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_with_a_stop_a_wide_beam_finds_the_exhaustive_best(cell, alpha):
    vocab = Vocab("abc")
    stop = first_stop("c")
    lengths = set()
    for seed in range(10, 22):
        model = tiny_model(cell, len(vocab), seed=seed)
        text, logprob = exhaustive_best(model, vocab, "a", 5, stop, alpha)
        result = beam_search(model, vocab, "a", len(vocab) ** 5, 5, length_norm=alpha, stop=stop)
        assert result.best.finished
        assert result.best.generated == text
        assert result.best.logprob == pytest.approx(logprob, abs=1e-5)
        assert result.best.score == pytest.approx(logprob / len(text) ** alpha, abs=1e-5)
        lengths.add(len(text))
    assert len(lengths) > 1  # some winners stopped early, some ran the whole length


def constant_model(probabilities: dict[str, float]) -> tuple[CharRNN, Vocab]:
    """A model whose next-character distribution is the same after any text: the head's weights
    are zero and its bias the log-probabilities."""
    vocab = Vocab(probabilities)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="lstm", hidden=4, layers=2, embed=4, dropout=0.0))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([math.log(probabilities[c]) for c in vocab.chars]))
    return model.eval(), vocab


def test_length_normalisation_changes_the_winner_when_beams_finish_at_different_lengths():
    # p(a) = 0.6, p(b) = 0.35, p(c) = 0.05; "b" stops. Raw totals: "b" -1.05 beats "aaaa" -2.04 and
    # "aaab" -2.58. Divided by the length (alpha = 1): "aaaa" -0.51 beats "aaab" -0.65 and "b" -1.05.
    model, vocab = constant_model({"a": 0.6, "b": 0.35, "c": 0.05})
    stop = first_stop("b")
    raw = beam_search(model, vocab, "a", 4, 4, stop=stop)
    assert (raw.best.text, raw.best.finished) == ("b", True)
    assert raw.best.logprob == pytest.approx(math.log(0.35), abs=1e-5)
    normalised = beam_search(model, vocab, "a", 4, 4, length_norm=1.0, stop=stop)
    assert normalised.best.text == "aaaa"
    assert normalised.best.score == pytest.approx(4 * math.log(0.6) / 4, abs=1e-5)
    assert [beam.text for beam in normalised.beams[:3]] == ["aaaa", "aaab", "aab"]
    # Both agree with the exhaustive search.
    for result, alpha in ((raw, 0.0), (normalised, 1.0)):
        assert result.best.generated == exhaustive_best(model, vocab, "a", 4, stop, alpha)[0]


def test_a_stop_that_excludes_its_text_cuts_the_shown_text_but_scores_what_was_generated():
    model, vocab = constant_model({"a": 0.2, "b": 0.7, "c": 0.1})
    result = beam_search(model, vocab, "a", 3, 6, stop=first_stop("bb", include=False))
    assert result.best.generated == "bb"
    assert result.best.text == ""
    assert result.best.logprob == pytest.approx(2 * math.log(0.7), abs=1e-5)
    assert len(result.best.char_logprobs()) == 2


def test_the_search_ends_once_no_live_beam_can_win():
    model, vocab = constant_model({"a": 0.2, "b": 0.7, "c": 0.1})
    steps = list(iter_beams(model, vocab, "a", 3, 50, stop=first_stop("b")))
    # "b" finishes at once with -0.36; every live beam is then below it already.
    assert len(steps) == 1 and steps[0].done and steps[0].best.text == "b"
    # No length limit: the stop ends it.
    assert beam_search(model, vocab, "a", 3, 0, stop=first_stop("b")).best.text == "b"


def test_ties_go_to_the_higher_ranked_parent_then_the_lower_vocabulary_index():
    model, vocab = constant_model({"a": 0.4, "b": 0.4, "c": 0.2})  # every a/b string is equally likely
    assert beam_search(model, vocab, "c", 1, 3).best.text == "aaa"
    assert [beam.text for beam in beam_search(model, vocab, "c", 2, 3).beams] == ["aaa", "aab"]
    assert [beam.text for beam in beam_search(model, vocab, "c", 3, 2).beams] == ["aa", "ab", "ba"]


# --------------------------------------------------------------------------- the generator form

def test_iter_beams_yields_each_step_and_its_last_value_is_the_search():
    vocab = Vocab("abc")
    model = tiny_model("lstm", 3, seed=5)
    steps = list(iter_beams(model, vocab, "ab", 4, 6))
    assert [step.step for step in steps] == [1, 2, 3, 4, 5, 6]
    assert [step.done for step in steps] == [False] * 5 + [True]
    assert [len(step.beams) for step in steps] == [3, 4, 4, 4, 4, 4]  # 3 characters, then W
    for step in steps:
        assert all(len(beam.text) == step.step for beam in step.beams)
        assert [beam.score for beam in step.beams] == sorted((beam.score for beam in step.beams), reverse=True)
        assert all(beam.finished == step.done for beam in step.beams)
    final = beam_search(model, vocab, "ab", 4, 6)
    assert [(b.text, b.logprob) for b in final.beams] == [(b.text, b.logprob) for b in steps[-1].beams]


def test_a_sampler_or_a_training_model_gives_the_same_search_and_is_left_as_it_was():
    vocab = Vocab("abcd")
    model = tiny_model("lstm", 4, seed=3)
    expected = beam_search(model, vocab, "ab", 3, 6)
    from_sampler = beam_search(Sampler(model, vocab, weights="fp32"), vocab, "ab", 3, 6)
    assert (from_sampler.best.text, from_sampler.best.logprob) == (expected.best.text, expected.best.logprob)
    dropping = CharRNN(ModelConfig(vocab_size=4, cell="lstm", hidden=6, layers=2, embed=4, dropout=0.5))
    dropping.load_state_dict(model.state_dict())
    dropping.train()
    result = beam_search(dropping, vocab, "ab", 3, 6)  # searched without dropout
    assert (result.best.text, result.best.logprob) == (expected.best.text, expected.best.logprob)
    assert dropping.training


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize(("width", "length", "norm", "stop", "flag"), [
    (0, 5, 0.0, None, "--beam must be a width from 1 to 1,000, got 0"),
    (-2, 5, 0.0, None, "--beam"),
    (1001, 5, 0.0, None, "--beam"),
    (5, 0, 0.0, first_stop("a"), "--beam 5 is wider than the vocabulary"),
    (2, 0, 0.0, None, "--length"),
    (2, 5, -1.0, None, "--length-norm"),
    (2, 5, float("nan"), None, "--length-norm"),
    (2, 5, 1e308, None, "--length-norm must be from 0 [(]off[)] to 10"),
])
def test_unusable_settings_are_refused_naming_the_flag(width, length, norm, stop, flag):
    vocab = Vocab("abc")
    with pytest.raises(SamplingError, match=flag):
        beam_search(tiny_model("gru", 3), vocab, "a", width, length, length_norm=norm, stop=stop)


def test_a_prime_outside_the_vocabulary_is_refused():
    with pytest.raises(SamplingError, match="--prime.*'z'"):
        beam_search(tiny_model("gru", 3), Vocab("abc"), "az", 2, 4)


# --------------------------------------------------------------------------- the CLI

def test_sample_beam_prints_the_best_continuation_and_its_log_probability(tiny_run, capsys):
    assert main(["sample", str(tiny_run), "--beam", "3", "--length", "30", "--prime", "The "]) == 0
    captured = capsys.readouterr()
    model, vocab, _ = load_model(tiny_run, "cpu")
    expected = beam_search(model, vocab, "The ", 3, 30)
    assert captured.out == "The " + expected.best.text + "\n"
    summary = " ".join(captured.err.split())
    assert f"beam 3: log-prob {expected.best.logprob:.3f} nats ({expected.best.bits_per_char():.3f} bits/char)" \
        in summary
    assert "over 30 characters, 2 runners-up; length-norm 0" in summary


def test_sample_beam_json_gives_text_settings_and_per_character_log_probabilities(tiny_run, capsys):
    assert main(["sample", str(tiny_run), "--beam", "2", "--length", "12", "--prime", "def", "--json",
                 "--length-norm", "0.5"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["settings"]["beam"] == 2 and record["settings"]["length_norm"] == 0.5
    assert record["settings"]["prime"] == "def" and record["settings"]["length"] == 12
    assert len(record["text"]) == 12 and len(record["char_logprobs"]) == 12
    assert sum(record["char_logprobs"]) == pytest.approx(record["logprob_nats"], abs=1e-4)
    assert record["bits_per_char"] == pytest.approx(-record["logprob_nats"] / 12 / math.log(2))
    assert [beam["text"] for beam in record["beams"]][0] == record["text"] and len(record["beams"]) == 2


@pytest.mark.parametrize("include", [False, True])
def test_sample_beam_ends_at_the_stop_text_as_sampling_does(tiny_run, capsys, include):
    model, vocab, _ = load_model(tiny_run, "cpu")
    unbounded = beam_search(model, vocab, "The ", 3, 40).best.text
    stop = unbounded[5:7]  # text the best continuation reaches: the stopped search must end there or before
    flags = ["--include-stop"] if include else []
    assert main(["sample", str(tiny_run), "--beam", "3", "--length", "40", "--prime", "The ", "--stop", stop,
                 "--json", *flags]) == 0
    record = json.loads(capsys.readouterr().out)
    expected = beam_search(model, vocab, "The ", 3, 40, stop=stop_rule(
        SampleSettings(stop=stop, include_stop=include)))
    assert record["text"] == expected.best.text and record["settings"]["stop"] == stop
    generated = record["generated"]
    assert stop in generated and generated.index(stop) + len(stop) == len(generated)  # ends at its first stop
    assert record["text"] == (generated if include else generated[:-len(stop)])


@pytest.mark.parametrize(("flags", "message"), [
    (["--beam", "0"], "--beam must be a width from 1 to 1,000, got 0"),
    (["--beam", "-3"], "--beam must be a width from 1 to 1,000, got -3"),
    (["--beam", "1" + "0" * 30], "--beam must be a width from 1 to 1,000"),
    (["--beam", "999", "--length", "0"], "--beam 999 is wider than the vocabulary"),
    (["--beam", "2", "--length", "0"], "--beam with --length 0 searches up to a stop string"),
    (["--beam", "2", "--temperature", "0.5"], "leave out --temperature"),
    (["--beam", "2", "--top-k", "3"], "leave out --top-k"),
    (["--beam", "2", "--seed", "3"], "leave out --seed"),
    (["--beam", "2", "--weights", "int8"], "--weights int8"),
    (["--beam", "2", "--length-norm", "-1"], "--length-norm must be from 0 (off) to 10, got -1.0"),
    (["--beam", "2", "--length-norm", "1e308"], "--length-norm must be from 0 (off) to 10"),
    (["--length-norm", "1"], "give --beam W with it"),
    (["--beam", "2", "--min-length", "3"], "give --stop with it"),
    (["--beam", "2", "--stop", "(", "--stop-regex"], "is not a regular expression"),
])
def test_sample_beam_refuses_bad_flags_in_one_line(tiny_run, capsys, flags, message):
    assert main(["sample", str(tiny_run), *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in " ".join(captured.err.split())
    assert "Traceback" not in captured.err
