#!/usr/bin/env python3
"""Calibrates the "unknown condition" flag of ``POST /diagnose`` and writes it into a model card.

1. Makes three record sets with ``generator.py`` (one model window long, raw float32):
   calibration (seed 5005) and in-distribution held-out (the card's held-out seed, 3003), each
   generated at every rate in ``RATES`` (a recorder's rate changes the band and the noise the
   features see, after resampling), and out-of-distribution (``generator.ood``: white noise,
   chirps, pure tones, clipped, flat lines) at the card's rate;
2. runs ``pfd-host model calibrate-unknown`` on them: tract runs the model, and the features are
   computed by the same Rust function ``/diagnose`` uses, so nothing is re-implemented here;
3. writes the printed calibration into ``model.json`` as ``"unknown"`` (key order and the
   card's two-space layout kept), with the seeds and counts under ``provenance``.

    python models/scripts/calibrate_unknown.py models/bearing-lstm [--pfd-host PATH]

Re-run it after retraining, then rebuild the component (the card is baked into its snapshot).
Clipped and flat records are caught by /diagnose's input checks, not by the score: the report
lists the score's share for every kind anyway.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generator as gen  # noqa: E402

CALIBRATION_SEED, PER_CLASS = 5005, 50
HELDOUT_SEED, HELDOUT_PER_CLASS = 3003, 20
OOD_SEED, OOD_PER_KIND = 6006, 20
RATES = (12_800, 20_480, 25_600, 48_000)


def write(path: Path, records: list[np.ndarray], side: dict) -> None:
    with open(path, "wb") as f:
        for r in records:
            f.write(r.astype("<f4").tobytes())
    path.with_name(path.name + ".json").write_text(json.dumps(side))


def in_distribution(seed: int, per_class: int, length: int, fs: int) -> tuple[list[np.ndarray], list[int]]:
    records, labels = [], []
    for j in range(per_class):
        for c in range(gen.NUM_CLASSES):
            records.append(gen.generate(c, np.random.default_rng([seed, c, j]), length, fs))
            labels.append(c)
    return records, labels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", type=Path, help="model folder (model.onnx + model.json)")
    default_host = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "release" / "pfd-host"
    p.add_argument("--pfd-host", type=Path, default=Path(os.environ.get("PFD_HOST_BIN", default_host)))
    p.add_argument("--dry-run", action="store_true", help="print the calibration, leave model.json alone")
    a = p.parse_args()
    card_path = a.model / "model.json"
    card = json.loads(card_path.read_text())
    length, fs = int(card["signal_length"]), int(card["sample_rate_hz"])
    with tempfile.TemporaryDirectory(prefix="pfd-calibrate-") as tmp:
        tmp = Path(tmp)
        sets = []
        for rate in RATES:
            n = round(length * rate / fs)
            for name, seed, per in (("calibration", CALIBRATION_SEED, PER_CLASS), ("heldout", HELDOUT_SEED, HELDOUT_PER_CLASS)):
                recs, labels = in_distribution(seed + rate, per, n, rate)
                write(tmp / f"{name}-{rate}.f32", recs, {"labels": labels})
                sets.append((name, f"{tmp / f'{name}-{rate}.f32'}:{rate}"))
        recs, kinds = [], []
        for i, kind in enumerate(gen.OOD_KINDS):
            for j in range(OOD_PER_KIND):
                recs.append(gen.ood(kind, np.random.default_rng([OOD_SEED, i, j]), length, fs))
                kinds.append(kind)
        write(tmp / "ood.f32", recs, {"kinds": kinds})
        out = subprocess.run(
            [str(a.pfd_host), "model", "calibrate-unknown", str(a.model),
             *[arg for name, spec in sets for arg in (f"--{'records' if name == 'calibration' else 'heldout'}-file", spec)],
             "--ood-file", str(tmp / "ood.f32")],
            check=True, capture_output=True, text=True,
        )
    calibration = json.loads(out.stdout)
    calibration["provenance"].update({
        "script": "models/scripts/calibrate_unknown.py",
        "calibration_seed": f"{CALIBRATION_SEED} + rate", "calibration_per_class_and_rate": PER_CLASS,
        "heldout_seed": f"{HELDOUT_SEED} + rate", "heldout_per_class_and_rate": HELDOUT_PER_CLASS,
        "rates_hz": list(RATES),
        "ood_seed": OOD_SEED, "ood_per_kind": OOD_PER_KIND, "ood_kinds": list(gen.OOD_KINDS),
    })
    print(json.dumps(calibration["provenance"], indent=2))
    print(f"threshold {calibration['threshold']:.3f}")
    if not a.dry_run:
        card["unknown"] = calibration
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
