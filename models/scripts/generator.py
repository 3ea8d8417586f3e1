#!/usr/bin/env python3
"""Seeded synthetic vibration generator for the 11 pfd-edge / LSTM_PFD machine conditions.

numpy only (no torch, no scipy): the CI imports this module with nothing but numpy installed.

One record is ``SIGNAL_LENGTH`` = 102400 float32 samples of a single accelerometer channel
sampled at ``SAMPLE_RATE`` = 20480 Hz (5 s), in arbitrary acceleration units, NOT normalised.

Physics (see ``models/scripts/README.md`` for the long version)
----------------------------------------------------------------
Every record draws its own operating point: shaft speed f0 in [15, 60) Hz with a slow, small speed
fluctuation (<= 1 %), a structural resonance fr in [2.5, 6] kHz with damping ratio 0.06-0.12 (the
"ringing" that bearing/looseness impacts excite), a sensor-noise level, an overall gain (0.1-10,
log-uniform) and a small DC offset.  On top of a *healthy baseline* (small residual 1x from
residual imbalance, a little 2x/3x, structural background noise around fr, white sensor noise) each
condition adds its mechanism:

=====  ==========================  ==============================================================
index  display name                mechanism added to the baseline
=====  ==========================  ==============================================================
0      Healthy                     nothing
1      Misalignment                strong 2x (and 3x, 4x), 2x >= 2.5 x the 1x
2      Imbalance                   strong 1x (phase-locked), 2x < 8 % of 1x
3      Bearing Clearance           looseness: 1x..8x harmonics + half-harmonics (0.5x, 1.5x, ...),
                                   asymmetric truncation (clipping) and once-per-rev rattle impacts
                                   ringing the structural resonance
4      Lubrication Issue           continuous broadband (high-frequency-weighted) friction noise,
                                   mildly amplitude-modulated once per revolution
5      Cavitation                  random bursts (Poisson arrivals, 4-40 ms) of dense bubble-collapse
                                   shocks through a broadband (low-Q, 4-8 kHz) response + raised
                                   high-frequency floor
6      Wear                        raised harmonic floor (1x..Kx, K in 8-20) + bearing-defect
                                   impulse train at a BPFO/BPFI-like non-integer multiple of the
                                   shaft speed (3.0-5.5x, with slip) ringing the resonance + random
                                   impacts
7      Oil Whirl                   sub-synchronous tone at 0.42-0.48x (wandering, modulated), larger
                                   than the 1x
8      Misalignment + Imbalance    strong 1x and 2x (2x = 0.5-1.0 x the 1x) + 3x
9      Wear + Lubrication          wear + lubrication mechanisms together
10     Cavitation + Clearance      clearance + cavitation mechanisms together
=====  ==========================  ==============================================================

Determinism: :func:`generate` draws only from the ``np.random.Generator`` it is given.
:func:`make_dataset` gives record ``j`` of class ``c`` its own stream
``np.random.default_rng([seed, c, j])``, so a dataset is reproducible from ``(n_per_class, seed)``,
independent of generation order, and datasets with different seeds share no stream.

CLI (makes a real request body for the pfd-edge HTTP API)::

    python models/scripts/generator.py --class 3 --seed 7 --out /tmp/req.json      # {"signal": [...]}
    python models/scripts/generator.py --class 3 --seed 7 --batch 4 --out /tmp/b.json  # {"signals": [...]}

Raw records for tools (``pfd-host model compare``)::

    python models/scripts/generator.py --raw-f32 /tmp/r.f32 --count 220 --seed 8008

writes ``count`` records as little-endian float32, row-major ``[count, length]``: record ``i`` is
record ``i // 11`` of class ``i % 11`` of ``make_dataset(ceil(count / 11), seed)`` (the same rows,
in the same order), and prints ``{"count", "length", "seed", "labels"}`` as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys

import numpy as np

SAMPLE_RATE = 20480
SIGNAL_LENGTH = 102400
NUM_CLASSES = 11

CLASS_NAMES = [
    "Healthy",
    "Misalignment",
    "Imbalance",
    "Bearing Clearance",
    "Lubrication Issue",
    "Cavitation",
    "Wear",
    "Oil Whirl",
    "Misalignment + Imbalance",
    "Wear + Lubrication",
    "Cavitation + Clearance",
]

CLASS_KEYS = [
    "sain",
    "desalignement",
    "desequilibre",
    "jeu",
    "lubrification",
    "cavitation",
    "usure",
    "oilwhirl",
    "mixed_misalign_imbalance",
    "mixed_wear_lube",
    "mixed_cavit_jeu",
]

TWO_PI = 2.0 * np.pi


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
def _resonance_kernel(fr: float, zeta: float, fs: float, decay: float = 4.5) -> np.ndarray:
    """Impulse response of a single-degree-of-freedom structural mode (peak-normalised to 1).

    h(t) = exp(-zeta*w*t) * sin(w_d*t), truncated after ``decay`` time constants.
    """
    w = TWO_PI * fr
    tau = 1.0 / (zeta * w)
    n = max(8, int(np.ceil(decay * tau * fs)))
    t = np.arange(n, dtype=np.float64) / fs
    h = np.exp(-t / tau) * np.sin(w * np.sqrt(1.0 - zeta * zeta) * t)
    return (h / np.max(np.abs(h))).astype(np.float32)


def _add_impulses(out: np.ndarray, pos: np.ndarray, amp: np.ndarray, kernel: np.ndarray) -> None:
    """In place: out += sum_i amp[i] * kernel shifted to sample pos[i] (truncated at the end)."""
    if pos.size == 0:
        return
    n, k = out.shape[0], kernel.shape[0]
    idx = pos[:, None] + np.arange(k)[None, :]
    vals = amp.astype(np.float32)[:, None] * kernel[None, :]
    keep = idx < n
    np.add.at(out, idx[keep], vals[keep])


def _crossings(cycles: np.ndarray, offset: float) -> np.ndarray:
    """Sample indices where an (unwrapped, increasing) phase in cycles passes offset + k."""
    cyc = np.floor(cycles - offset)
    return np.nonzero(np.diff(cyc) > 0)[0] + 1


def _lowpass(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average of ``width`` samples (cheap FIR low-pass), same length, float32."""
    c = np.cumsum(x)  # float32 is enough: rounding errors of a windowed difference stay local
    y = np.empty_like(x)
    y[width:] = (c[width:] - c[:-width]) / width
    y[:width] = c[:width] / np.arange(1, width + 1)
    return y


def _sin_cycles(cycles: np.ndarray) -> np.ndarray:
    """sin(2 pi * cycles) for a float64 phase given in cycles: wrapped to [0, 1) in float64, then
    evaluated in float32 (about 10x faster than float64 np.sin/np.mod, error < 1e-6 rad)."""
    frac = np.floor(cycles)
    np.subtract(cycles, frac, out=frac)
    frac *= TWO_PI
    out = frac.astype(np.float32)
    return np.sin(out, out=out)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / r if r > 0 else x


_TIME_AXES: dict = {}


def _time_axis(length: int, fs: int) -> np.ndarray:
    """Read-only cached ``np.arange(length) / fs`` (float64 seconds)."""
    key = (length, fs)
    t = _TIME_AXES.get(key)
    if t is None:
        t = np.arange(length, dtype=np.float64) / fs
        t.flags.writeable = False
        _TIME_AXES.clear()
        _TIME_AXES[key] = t
    return t


class _Ctx:
    """Per-record operating point shared by the mechanisms."""

    def __init__(self, rng: np.random.Generator, length: int, fs: int, shaft_hz: float | None = None,
                 defect: tuple[str, float] | None = None):
        self.rng, self.n, self.fs = rng, length, fs
        self.t = _time_axis(length, fs)
        self.f0 = float(rng.uniform(15.0, 60.0))  # shaft speed, Hz
        if shaft_hz is not None:  # drawn anyway: the rest of the record's stream stays the same
            self.f0 = float(shaft_hz)
        self.defect = defect
        eps = float(rng.uniform(0.0, 0.01))  # relative speed fluctuation
        fm = float(rng.uniform(0.1, 1.0))  # its rate, Hz
        phm = float(rng.uniform(0, TWO_PI))
        # shaft angle in cycles: int f(t) dt for f(t) = f0 (1 + eps sin(2 pi fm t + phm))
        wob = np.cos((TWO_PI * fm * self.t + phm).astype(np.float32)) - np.float32(np.cos(phm))
        self.cyc = self.f0 * self.t - (self.f0 * eps / (TWO_PI * fm)) * wob
        self.theta32 = ((self.cyc - np.floor(self.cyc)) * TWO_PI).astype(np.float32)  # wrapped angle
        self.fr = float(rng.uniform(2500.0, 6000.0))  # structural resonance, Hz
        self.zeta = float(rng.uniform(0.06, 0.12))
        self.kernel = _resonance_kernel(self.fr, self.zeta, fs)

    def harmonic(self, k: float, amp: float, phase: float | None = None) -> np.ndarray:
        """amp * sin(k * theta + phase), float32 (k may be fractional, e.g. 0.5 for half-harmonics)."""
        if phase is None:
            phase = float(self.rng.uniform(0, TWO_PI))
        if float(k).is_integer():
            out = np.multiply(self.theta32, np.float32(k))  # in place from here on: fewer temporaries
            out += np.float32(phase)
            np.sin(out, out=out)
            out *= np.float32(amp)
            return out
        # non-integer multiple: wrap the unwrapped phase first
        return np.float32(amp) * _sin_cycles(k * self.cyc + phase / TWO_PI)

    def white(self) -> np.ndarray:
        return self.rng.standard_normal(self.n, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# mechanisms (each returns a float32 signal in "machine units"; the healthy 1x is ~0.15-0.4)
# --------------------------------------------------------------------------------------------
def _baseline(c: _Ctx, r1: float | None = None) -> np.ndarray:
    """Healthy machine: residual 1x, a little 2x/3x, structural background noise, sensor noise."""
    rng = c.rng
    if r1 is None:
        r1 = rng.uniform(0.15, 0.4)
    x = c.harmonic(1, r1)
    x += c.harmonic(2, r1 * rng.uniform(0.02, 0.12))
    x += c.harmonic(3, r1 * rng.uniform(0.0, 0.06))
    w = c.white()
    # structural background: narrow-band noise around the resonance (low-passed noise x carrier)
    bw = int(rng.integers(8, 24))  # moving-average width -> bandwidth of a few hundred Hz
    band = _unit_rms(_lowpass(w, bw)) * _sin_cycles(c.fr * c.t)
    x += np.float32(rng.uniform(0.01, 0.04)) * band
    # white sensor noise (re-uses the draw reversed: independent enough of the band noise)
    x += np.float32(rng.uniform(0.01, 0.04)) * w[::-1]
    return x


def _misalignment(c: _Ctx, a2: float) -> np.ndarray:
    """Angular/parallel misalignment: 2x dominant, 3x and 4x present, 1x smaller."""
    rng = c.rng
    x = c.harmonic(2, a2)
    x += c.harmonic(1, a2 * rng.uniform(0.1, 0.4))
    x += c.harmonic(3, a2 * rng.uniform(0.2, 0.6))
    x += c.harmonic(4, a2 * rng.uniform(0.05, 0.25))
    return x


def _imbalance(c: _Ctx, a1: float, rel2: tuple[float, float] = (0.01, 0.08)) -> np.ndarray:
    """Mass imbalance: a large, phase-locked 1x (centrifugal force), little 2x."""
    x = c.harmonic(1, a1)
    x += c.harmonic(2, a1 * c.rng.uniform(*rel2))
    return x


def _clearance(c: _Ctx) -> np.ndarray:
    """Mechanical looseness / excessive bearing clearance.

    Rich 1x..8x harmonics plus half-harmonics (the rotor only touches the bearing every other
    revolution), an asymmetric truncation (motion limited by the clearance -> clipping), and
    once-per-revolution rattle impacts that ring the structural resonance.
    """
    rng = c.rng
    a = rng.uniform(0.8, 2.0)
    x = np.zeros(c.n, np.float32)
    for k in range(1, 9):
        x += c.harmonic(k, a * rng.uniform(0.3, 1.0) / np.sqrt(k))
    for k in (0.5, 1.5, 2.5, 3.5):
        x += c.harmonic(k, a * rng.uniform(0.2, 0.6) / np.sqrt(k + 0.5))
    peak = float(np.max(np.abs(x)))
    hi = peak * rng.uniform(0.45, 0.75)
    lo = peak * rng.uniform(0.45, 0.75)
    x = np.clip(x, -lo, hi)
    # rattle: one impact per rev (sometimes every other rev), timing jitter, random amplitude
    pos = _crossings(c.cyc, float(rng.uniform(0, 1)))
    if rng.random() < 0.3:
        pos = pos[::2]
    jitter = max(1, int(0.01 * c.fs / c.f0))
    pos = np.clip(pos + rng.integers(-jitter, jitter + 1, pos.size), 0, c.n - 1)
    amp = a * rng.uniform(0.4, 1.0) * rng.uniform(0.6, 1.4, pos.size)
    _add_impulses(x, pos, amp, c.kernel)
    return x


def _lubrication(c: _Ctx) -> np.ndarray:
    """Lubrication issue: metal-to-metal friction -> continuous broadband noise rising with
    frequency (first difference of white noise), mildly modulated once per revolution."""
    rng = c.rng
    w = c.white()
    f = np.empty_like(w)
    f[1:] = w[1:] - w[:-1]
    f[0] = 0.0
    f = 0.6 * f + 0.4 * w  # broadband with high-frequency emphasis
    m = rng.uniform(0.05, 0.4)
    mod = 1.0 + np.float32(m) * np.sin(c.theta32 + np.float32(rng.uniform(0, TWO_PI)))
    return np.float32(rng.uniform(0.25, 0.8)) * _unit_rms(f) * mod


def _cavitation(c: _Ctx) -> np.ndarray:
    """Cavitation: vapour bubbles collapsing in random bursts.  Each burst is a dense cluster of
    shocks with random amplitude through a broadband (low-Q, 4-8 kHz) response; plus a raised
    continuous high-frequency floor."""
    rng = c.rng
    x = np.zeros(c.n, np.float32)
    kern = _resonance_kernel(rng.uniform(4000.0, 8000.0), rng.uniform(0.15, 0.3), c.fs)
    duty = rng.uniform(0.1, 0.35)  # expected fraction of time inside a burst
    n_b = max(2, int(rng.poisson(duty / 0.022 * c.n / c.fs)))  # mean burst length is 22 ms
    dur = rng.uniform(0.004, 0.04, size=n_b)  # burst lengths, s
    starts = rng.uniform(0, c.n / c.fs, size=n_b)
    dens = rng.uniform(1000.0, 4000.0)  # shocks per second within a burst
    level = rng.uniform(1.0, 2.5)
    pos_l, amp_l = [], []
    for s, d in zip(starts, dur):
        k = max(1, int(rng.poisson(dens * d)))
        p = (s + rng.uniform(0, d, size=k)) * c.fs
        env = np.sin(np.pi * (p / c.fs - s) / d)  # burst swells and dies out
        pos_l.append(p.astype(np.int64))
        amp_l.append(level * rng.uniform(0.5, 1.5) * env * rng.standard_normal(k))
    pos = np.concatenate(pos_l)
    amp = np.concatenate(amp_l)
    ok = pos < c.n
    _add_impulses(x, pos[ok], amp[ok], kern)
    # raised high-frequency floor (reversed-sign difference of the burst-free noise)
    w = c.white()
    hf = np.empty_like(w)
    hf[1:] = w[1:] - w[:-1]
    hf[0] = 0.0
    x += np.float32(rng.uniform(0.03, 0.1)) * hf
    return x


def _wear(c: _Ctx) -> np.ndarray:
    """Wear: raised harmonic floor (1x..Kx), a bearing-defect impulse train at a BPFO/BPFI-like
    non-integer multiple of the shaft speed (with 1-2 % slip) that rings the structural
    resonance (BPFI-like trains are amplitude-modulated by the 1x load zone), and random impacts."""
    rng = c.rng
    x = np.zeros(c.n, np.float32)
    floor = rng.uniform(0.12, 0.35)
    for k in range(1, int(rng.integers(8, 21)) + 1):
        x += c.harmonic(k, floor * rng.uniform(0.5, 1.0) / k**0.3)
    ratio = rng.uniform(3.0, 5.5)  # defect frequency / shaft speed
    if c.defect is not None:  # a named bearing's BPFO/BPFI order (see generate(defect=...))
        ratio = float(c.defect[1])
    pos = _crossings(ratio * c.cyc, float(rng.uniform(0, 1)))
    period = c.fs / (ratio * c.f0)
    slip = max(1, int(rng.uniform(0.01, 0.02) * period))
    pos = np.clip(pos + rng.integers(-slip, slip + 1, pos.size), 0, c.n - 1)
    amp = rng.uniform(0.4, 1.2) * rng.uniform(0.7, 1.3, pos.size)
    inner = rng.random() < 0.5
    if c.defect is not None:
        inner = c.defect[0] == "bpfi"
    if inner:  # inner-race-like: load-zone modulation at 1x
        amp = amp * (0.55 + 0.45 * np.cos(TWO_PI * c.cyc[pos] + rng.uniform(0, TWO_PI)))
    _add_impulses(x, pos, amp, c.kernel)
    n_r = int(rng.poisson(rng.uniform(5.0, 30.0) * c.n / c.fs))  # random impacts
    rpos = rng.integers(0, c.n, n_r)
    _add_impulses(x, rpos, rng.uniform(0.5, 2.0, n_r), c.kernel)
    return x


def _oil_whirl(c: _Ctx) -> np.ndarray:
    """Oil whirl: the journal precesses in its fluid-film bearing at just under half the shaft
    speed (0.42-0.48x); the whirl frequency wanders a little and its amplitude breathes."""
    rng = c.rng
    ratio = rng.uniform(0.42, 0.48)
    d = rng.uniform(0.0, 0.01)
    fm = rng.uniform(0.05, 0.5)
    ph = rng.uniform(0, TWO_PI)
    fw = ratio * c.f0
    wob = np.cos((TWO_PI * fm * c.t + ph).astype(np.float32)) - np.float32(np.cos(ph))
    cycles = ratio * c.cyc - (fw * d / (TWO_PI * fm)) * wob  # whirl phase, cycles
    am = 1.0 + np.float32(rng.uniform(0.0, 0.25)) * _sin_cycles(rng.uniform(0.1, 1.0) * c.t + rng.uniform(0, 1))
    aw = np.float32(rng.uniform(1.0, 3.0))
    x = (aw * am) * _sin_cycles(cycles + rng.uniform(0, 1))
    x += c.harmonic(1, aw * rng.uniform(0.15, 0.5))
    return x


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def generate(class_index: int, rng: np.random.Generator, length: int = SIGNAL_LENGTH, fs: int = SAMPLE_RATE,
             shaft_hz: float | None = None, defect: tuple[str, float] | None = None) -> np.ndarray:
    """One raw (un-normalised) record of condition ``class_index``: float32 array of ``length``.

    ``shaft_hz`` fixes the shaft speed instead of drawing it; ``defect`` = ``("bpfo" | "bpfi",
    order)`` makes a Wear record's impulse train run at ``order`` x the shaft speed, outer-race
    (no load-zone modulation) or inner-race (modulated at 1x) — a named bearing's BPFO or BPFI.
    Both leave every other draw as it is, and the defaults (None) give exactly the training
    distribution."""
    if not 0 <= int(class_index) < NUM_CLASSES:
        raise ValueError(f"class_index must be in [0, {NUM_CLASSES}), got {class_index}")
    ci = int(class_index)
    if defect is not None and defect[0] not in ("bpfo", "bpfi"):
        raise ValueError(f"defect must be ('bpfo' | 'bpfi', order), got {defect!r}")
    c = _Ctx(rng, int(length), int(fs), shaft_hz, defect)
    if ci == 2:  # Imbalance: strong 1x replaces the residual one
        x = _baseline(c, r1=0.0) + _imbalance(c, rng.uniform(2.0, 5.0))
    elif ci == 8:  # Misalignment + Imbalance
        a1 = rng.uniform(2.0, 5.0)
        x = _baseline(c, r1=0.0) + _imbalance(c, a1, rel2=(0.0, 0.0))
        x += _misalignment(c, a1 * rng.uniform(0.5, 1.0))
    else:
        x = _baseline(c)
        if ci == 1:
            x += _misalignment(c, rng.uniform(1.0, 2.5))
        elif ci == 3:
            x += _clearance(c)
        elif ci == 4:
            x += _lubrication(c)
        elif ci == 5:
            x += _cavitation(c)
        elif ci == 6:
            x += _wear(c)
        elif ci == 7:
            x += _oil_whirl(c)
        elif ci == 9:
            x += _wear(c)
            x += _lubrication(c)
        elif ci == 10:
            x += _clearance(c)
            x += _cavitation(c)
    gain = np.float32(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
    dc = np.float32(rng.uniform(-0.02, 0.02))
    x += dc
    x *= gain
    return np.ascontiguousarray(x, dtype=np.float32)


OOD_KINDS = ("white_noise", "chirp", "sine", "clipped", "flat")


def ood(kind: str, rng: np.random.Generator, length: int = SIGNAL_LENGTH, fs: int = SAMPLE_RATE) -> np.ndarray:
    """A record of a condition the model never saw (for the unknown-condition flag):

    - ``white_noise``: Gaussian noise, any level;
    - ``chirp``: a linear sweep over a random band between 1 Hz and 0.45 fs;
    - ``sine``: one pure tone outside the training's shaft range (1-12 Hz or 70 Hz-4 kHz);
    - ``clipped``: an in-distribution record overdriven 5-50x into a +-1 full scale;
    - ``flat``: a constant (a disconnected sensor), zero or a DC level.
    """
    t = _time_axis(length, fs)
    level = float(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
    if kind == "white_noise":
        x = rng.standard_normal(length) * level
    elif kind == "chirp":
        f_a, f_b = np.sort(rng.uniform(1.0, 0.45 * fs, 2))
        dur = length / fs
        x = level * np.sin(TWO_PI * (f_a * t + (f_b - f_a) / (2 * dur) * t * t))
    elif kind == "sine":
        f = rng.uniform(1.0, 12.0) if rng.random() < 0.3 else float(np.exp(rng.uniform(np.log(70.0), np.log(4000.0))))
        x = level * np.sin(TWO_PI * f * t + rng.uniform(0, TWO_PI))
    elif kind == "clipped":
        base = generate(int(rng.integers(0, NUM_CLASSES)), rng, length, fs)
        x = np.clip(base / np.max(np.abs(base)) * rng.uniform(5.0, 50.0), -1.0, 1.0)
    elif kind == "flat":
        x = np.full(length, 0.0 if rng.random() < 0.5 else rng.uniform(-1.0, 1.0))
    else:
        raise ValueError(f"kind must be one of {OOD_KINDS}, got {kind!r}")
    return np.ascontiguousarray(x, dtype=np.float32)


def make_dataset(n_per_class: int, seed: int, length: int = SIGNAL_LENGTH, fs: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` records of every class, interleaved (0, 1, ..., 10, 0, 1, ...).

    Record ``j`` of class ``c`` is ``generate(c, np.random.default_rng([seed, c, j]))``.
    Returns ``X`` float32 [11 * n_per_class, length] and ``y`` int64 [11 * n_per_class].
    """
    n = NUM_CLASSES * int(n_per_class)
    X = np.empty((n, length), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    i = 0
    for j in range(int(n_per_class)):
        for ci in range(NUM_CLASSES):
            X[i] = generate(ci, np.random.default_rng([int(seed), ci, j]), length, fs)
            y[i] = ci
            i += 1
    return X, y


def wav_bytes(x: np.ndarray, rate: int, kind: str = "wav16", channels: int = 1, channel: int = 0,
              format_tag: int | None = None) -> bytes:
    """A RIFF/WAVE file of `x` as an analyser writes one: PCM int16 (tag 1, scaled to 90 % of full
    scale) or IEEE float32 (tag 3); `x` in `channel` of `channels`, the other channels holding a
    different signal. (Used by the end-to-end tests and scripts/diagnose_bench.py.)"""
    frames = np.zeros((len(x), channels), dtype=np.float64)
    for ch in range(channels):
        frames[:, ch] = x if ch == channel else np.roll(x, 1000 * (ch + 1)) * 0.3
    if kind == "wav16":
        peak = np.max(np.abs(frames)) or 1.0
        data = np.round(frames / peak * 0.9 * 32767).astype("<i2").tobytes()
        tag, bits = 1, 16
    else:
        data = frames.astype("<f4").tobytes()
        tag, bits = 3, 32
    tag = format_tag if format_tag is not None else tag
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a synthetic vibration record as a pfd-edge request body.")
    p.add_argument("--class", dest="cls", type=int, help="class index 0..10 (request bodies)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=None, help="write {'signals': [N records]} (seeds seed..seed+N-1)")
    p.add_argument("--length", type=int, default=SIGNAL_LENGTH)
    p.add_argument("--out", default="-", help="output file ('-' = stdout)")
    p.add_argument("--raw-f32", metavar="FILE", help="write --count records of make_dataset(ceil(count/11), seed) "
                   "as raw little-endian float32 [count, length]; print their labels as JSON")
    p.add_argument("--count", type=int, default=NUM_CLASSES, help="records for --raw-f32")
    a = p.parse_args(argv)
    if a.raw_f32 is not None:
        if a.count < 1:
            p.error("--count must be >= 1")
        labels = []
        with open(a.raw_f32, "wb") as f:
            for i in range(a.count):
                c, j = i % NUM_CLASSES, i // NUM_CLASSES
                f.write(generate(c, np.random.default_rng([int(a.seed), c, j]), a.length).astype("<f4").tobytes())
                labels.append(c)
        json.dump({"count": a.count, "length": a.length, "seed": a.seed, "labels": labels}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if a.cls is None:
        p.error("--class is required (or --raw-f32)")
    if not 0 <= a.cls < NUM_CLASSES:
        p.error(f"--class must be in 0..{NUM_CLASSES - 1}")
    if a.batch is None:
        body = {"signal": generate(a.cls, np.random.default_rng(a.seed), a.length).tolist()}
    else:
        if a.batch < 1:
            p.error("--batch must be >= 1")
        body = {"signals": [generate(a.cls, np.random.default_rng(a.seed + i), a.length).tolist() for i in range(a.batch)]}
    text = json.dumps(body, separators=(",", ":"))
    if a.out == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(a.out, "w") as f:
            f.write(text)
        print(f"wrote {a.out}: class {a.cls} ({CLASS_NAMES[a.cls]}), seed {a.seed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
