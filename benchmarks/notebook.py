"""The course notebook's char-RNN, written the way the notebook writes it: the baseline.

Numpy one-hot batches built every step, the loss read back to the host every step,
and its `sample()` with a numpy one-hot input and a softmax round trip per character.
The only change is the fixed target wrap-around (irrelevant to speed).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def one_hot_encode(arr, n_labels):
    one_hot = np.zeros((arr.size, n_labels), dtype=np.float32)
    one_hot[np.arange(one_hot.shape[0]), arr.flatten()] = 1.
    return one_hot.reshape((*arr.shape, n_labels))


def get_batches(arr, batch_size, seq_length):
    batch_size_total = batch_size * seq_length
    n_batches = (len(arr) - 1) // batch_size_total
    x_all = arr[:n_batches * batch_size_total].reshape((batch_size, -1))
    y_all = arr[1:n_batches * batch_size_total + 1].reshape((batch_size, -1))
    for n in range(0, x_all.shape[1], seq_length):
        yield x_all[:, n:n + seq_length], y_all[:, n:n + seq_length]


class NotebookCharRNN(nn.Module):
    def __init__(self, tokens, n_hidden=512, n_layers=2, drop_prob=0.5):
        super().__init__()
        self.drop_prob, self.n_layers, self.n_hidden = drop_prob, n_layers, n_hidden
        self.chars = tokens
        self.int2char = dict(enumerate(self.chars))
        self.char2int = {ch: ii for ii, ch in self.int2char.items()}
        self.lstm = nn.LSTM(len(self.chars), n_hidden, n_layers, dropout=drop_prob, batch_first=True)
        self.dropout = nn.Dropout(drop_prob)
        self.fc = nn.Linear(n_hidden, len(self.chars))

    def forward(self, x, hidden):
        r_output, hidden = self.lstm(x, hidden)
        out = self.dropout(r_output)
        out = out.contiguous().view(-1, self.n_hidden)
        return self.fc(out), hidden

    def init_hidden(self, batch_size):
        weight = next(self.parameters()).data
        return (weight.new(self.n_layers, batch_size, self.n_hidden).zero_(),
                weight.new(self.n_layers, batch_size, self.n_hidden).zero_())


def notebook_train(net, data, steps, batch_size=128, seq_length=100, lr=0.001, clip=5, deadline=None,
                   on_step=None):
    """The notebook's loop for `steps` steps (or until `deadline`), epochs repeating. Returns steps done."""
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    n_chars = len(net.chars)
    done = 0
    while done < steps:
        h = net.init_hidden(batch_size)
        for x, y in get_batches(data, batch_size, seq_length):
            x = one_hot_encode(x, n_chars)
            inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
            h = tuple([each.data for each in h])
            net.zero_grad()
            output, h = net(inputs, h)
            loss = criterion(output, targets.reshape(batch_size * seq_length).long())
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            loss.item()  # the host sync every step
            done += 1
            if on_step:
                on_step(done)
            if done >= steps or (deadline is not None and time.perf_counter() >= deadline):
                return done
    return done


def predict(net, char, h=None, top_k=None):
    x = np.array([[net.char2int[char]]])
    x = one_hot_encode(x, len(net.chars))
    inputs = torch.from_numpy(x)
    h = tuple([each.data for each in h])
    out, h = net(inputs, h)
    p = F.softmax(out, dim=1).data
    if top_k is None:
        top_ch = np.arange(len(net.chars))
    else:
        p, top_ch = p.topk(top_k)
        top_ch = top_ch.numpy().squeeze()
    p = p.numpy().squeeze()
    char = np.random.choice(top_ch, p=p / p.sum())
    return net.int2char[char], h


def sample(net, size, prime="The", top_k=None):
    net.eval()
    chars = [ch for ch in prime]
    h = net.init_hidden(1)
    for ch in prime:
        char, h = predict(net, ch, h, top_k=top_k)
    chars.append(char)
    for _ in range(size):
        char, h = predict(net, chars[-1], h, top_k=top_k)
        chars.append(char)
    return "".join(chars)


def notebook_val_loss(net, data, batch_size=1, seq_length=1000):
    """Mean cross-entropy over `data` read as one stream (batch 1), dropout off."""
    net.eval()
    total, count = 0.0, 0
    h = net.init_hidden(batch_size)
    n_chars = len(net.chars)
    with torch.no_grad():
        for start in range(0, len(data) - 1, seq_length):
            x = data[start:start + seq_length][None]
            y = data[start + 1:start + seq_length + 1][None]
            x = x[:, :y.shape[1]]
            out, h = net(torch.from_numpy(one_hot_encode(x, n_chars)), h)
            total += F.cross_entropy(out, torch.from_numpy(y).reshape(-1).long(), reduction="sum").item()
            count += y.size
    net.train()
    return total / count
