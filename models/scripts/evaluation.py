"""What train.py and quantize.py share: the cached, seeded datasets and the evaluation helpers.

* ``cached_dataset`` — ``generator.make_dataset(n_per_class, seed)`` built with ``procs``
  processes into an .npy memmap under ``work`` (identical content, same row order) and reused if
  present; both scripts read the same files (``<work>/data_s<seed>_n<per_class>.npy``).
* ``ort_session`` / ``ort_predict`` — onnxruntime on CPU, one thread, the way the references are
  measured (onnxruntime is imported on first use: the training environment needs it only there).
* ``per_class`` / ``confusion`` — accuracy per class and the confusion matrix.
* ``band_limit`` — records low-passed like a lower-rate recorder's (training augmentation, and the
  band-limited evaluation both scripts report).
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

import generator as gen


# Validation and held-out sets are also scored low-passed at the top of a 12.8 kHz recording's
# band, the lowest common recorder rate /diagnose takes; the model card states it as
# `min_bandwidth_hz` (below it, /diagnose warns).
VALIDATION_CUTOFF_HZ = 6_400.0

# Cut-offs of the band-limit augmentation: what a recording at 11–18 kHz keeps once /diagnose
# has resampled it to 20480 Hz (12.8 kHz recorders keep 0–6.4 kHz, less the resampler's
# transition band). Why: the model learns what each condition looks like without the top of the
# band, instead of calling every band-limited Lubrication record Wear.
BAND_LIMIT_HZ = (5_500.0, 9_000.0)
BAND_LIMIT_TRANSITION_HZ = 300.0


def band_limit(x: np.ndarray, cutoff_hz) -> np.ndarray:
    """Rows of ``x`` (at 20480 Hz) low-passed at ``cutoff_hz`` (a scalar or one per row): the
    spectrum above the cut-off removed, with a raised-cosine transition of
    ``BAND_LIMIT_TRANSITION_HZ`` below it so the edge does not ring."""
    n = x.shape[-1]
    f = np.fft.rfftfreq(n, 1.0 / gen.SAMPLE_RATE)
    fc = np.broadcast_to(np.asarray(cutoff_hz, np.float64), x.shape[:-1])[..., None]
    t = np.clip((fc - f) / BAND_LIMIT_TRANSITION_HZ, 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * t)
    return np.fft.irfft(np.fft.rfft(x.astype(np.float64), axis=-1) * gain, n, axis=-1).astype(np.float32)


def _fill(args):
    path, seed, j0, j1 = args
    X = np.lib.format.open_memmap(path, mode="r+")
    for j in range(j0, j1):
        for c in range(gen.NUM_CLASSES):
            X[j * gen.NUM_CLASSES + c] = gen.generate(c, np.random.default_rng([seed, c, j]))
    X.flush()
    return j1 - j0


def cached_dataset(work: Path, n_per_class: int, seed: int, procs: int) -> tuple[np.ndarray, np.ndarray]:
    """``generator.make_dataset(n_per_class, seed)`` as a memmap under ``work`` (see the module docs)."""
    work.mkdir(parents=True, exist_ok=True)
    n = n_per_class * gen.NUM_CLASSES
    path = work / f"data_s{seed}_n{n_per_class}.npy"
    y = np.tile(np.arange(gen.NUM_CLASSES, dtype=np.int64), n_per_class)
    if not path.exists():
        tmp = str(path) + ".part.npy"
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, gen.SIGNAL_LENGTH)).flush()
        step = max(1, math.ceil(n_per_class / (procs * 4)))
        jobs = [(tmp, seed, j, min(j + step, n_per_class)) for j in range(0, n_per_class, step)]
        t0 = time.time()
        with mp.get_context("fork").Pool(procs) as pool:
            list(pool.imap_unordered(_fill, jobs))
        os.replace(tmp, path)
        print(f"  generated {n} records (seed {seed}) in {time.time() - t0:.1f}s", flush=True)
    return np.load(path, mmap_mode="r"), y


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_predict(sess, X: np.ndarray, bs: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(X), bs):
        out.append(sess.run(["logits"], {"input": np.ascontiguousarray(X[i : i + bs])[:, None, :]})[0])
    return np.concatenate(out)


def per_class(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {gen.CLASS_NAMES[c]: float(np.mean(pred[y == c] == c)) for c in range(gen.NUM_CLASSES)}


def confusion(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    m = np.zeros((gen.NUM_CLASSES, gen.NUM_CLASSES), dtype=np.int64)
    np.add.at(m, (y, pred), 1)
    return m


def ort_predict_band_limited(sess, X: np.ndarray, cutoff_hz: float, chunk: int = 100) -> np.ndarray:
    """``ort_predict`` of ``X`` low-passed at ``cutoff_hz``, a chunk of records at a time (the
    float64 spectra of a whole held-out set would take gigabytes)."""
    return np.concatenate([ort_predict(sess, band_limit(X[i : i + chunk], cutoff_hz)) for i in range(0, len(X), chunk)])
