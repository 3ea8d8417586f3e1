#!/usr/bin/env python3
"""Train, export and document the ``bearing-lstm`` ONNX model served by pfd-edge.

Run once (CI never retrains)::

    python models/scripts/train.py                 # generate data, train, export, evaluate, write card
    python models/scripts/train.py --export-only   # re-export/re-evaluate from /tmp/pfd-train/model.pt

Everything heavy (datasets, checkpoints) lives under ``--work`` (default /tmp/pfd-train), never in
the repository.  Outputs (in ``models/bearing-lstm/``): ``model.onnx``, ``model.json`` (model card),
``reference_inputs.f32`` + ``reference.json`` (golden vectors for the Rust side).

Seeds (all datasets come from ``generator.make_dataset(n_per_class, seed)``, whose record j of class
c uses ``np.random.default_rng([seed, c, j])``, so datasets with different seeds are disjoint):

* ``TRAIN_SEED`` = 1001 – training set
* ``VAL_SEED`` = 2002   – validation set (checkpoint selection only)
* ``TEST_SEED`` = 3003  – held-out test set, evaluated once with onnxruntime on the exported file
* ``REF_SEED`` = 4004   – the 11 reference records (``make_dataset(1, REF_SEED)``)
* ``TORCH_SEED`` = 0    – weight init, batch order, crops
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import generator as gen  # noqa: E402
from evaluation import (  # noqa: E402
    BAND_LIMIT_HZ, BAND_LIMIT_TRANSITION_HZ, VALIDATION_CUTOFF_HZ, band_limit, cached_dataset, confusion,
    ort_predict, ort_predict_band_limited, ort_session, per_class,
)

MODELS_DIR = HERE.parent
OUT_DIR = MODELS_DIR / "bearing-lstm"

TRAIN_SEED = 1001
VAL_SEED = 2002
TEST_SEED = 3003
REF_SEED = 4004
TORCH_SEED = 0

RTOL = 1e-3
ATOL = 1e-5
OPSET = 17


# ------------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------------
class BearingLSTM(nn.Module):
    """Raw vibration [B, 1, L] -> logits [B, 11].

    1. In-graph per-record normalisation: remove the mean, divide by the RMS (so the model takes raw,
       un-normalised samples of any scale).
    2. Strided conv front end (total stride 512): 102400 samples -> 200 steps of 32 features, each
       step seeing ~54 ms of signal (band energies after ReLU rectification ~ envelopes).
    3. One-layer LSTM (batch_first) over the 200 steps.
    4. Head: Linear(mean over time of the LSTM outputs) + Linear(last hidden state), added (two
       Gemm nodes instead of a Concat).
    Every step is length-agnostic: any L >= MIN_LENGTH works.
    """

    def __init__(self, hidden: int = 48, c1: int = 16, c2: int = 32, c3: int = 32, num_classes: int = 11):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(1, c1, kernel_size=32, stride=16, padding=8),
            nn.BatchNorm1d(c1),
            nn.ReLU(),
            nn.Conv1d(c1, c2, kernel_size=8, stride=4, padding=2),
            nn.BatchNorm1d(c2),
            nn.ReLU(),
            nn.Conv1d(c2, c3, kernel_size=16, stride=8, padding=4),
            nn.BatchNorm1d(c3),
            nn.ReLU(),
        )
        self.lstm = nn.LSTM(c3, hidden, num_layers=1, batch_first=True)
        self.head_mean = nn.Linear(hidden, num_classes)
        self.head_last = nn.Linear(hidden, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=-1, keepdim=True)
        x = x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + 1e-12)
        f = self.conv(x).transpose(1, 2)  # [B, T, C]
        out, (h, _) = self.lstm(f)
        return self.head_mean(out.mean(dim=1)) + self.head_last(h[-1])


def conv_steps(length: int) -> int:
    """Number of LSTM time steps the conv stack yields for an input of ``length`` samples."""
    n = length
    for k, s, p in ((32, 16, 8), (8, 4, 2), (16, 8, 4)):
        n = (n + 2 * p - k) // s + 1
    return n


MIN_LENGTH = next(L for L in range(1, 4096) if conv_steps(L) >= 1)  # = 512


def fold_batchnorm(model: BearingLSTM) -> BearingLSTM:
    """Copy of ``model`` (eval) with every BatchNorm folded into the preceding Conv (-> Identity)."""
    m = copy.deepcopy(model).eval()
    layers = list(m.conv)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.BatchNorm1d):
            conv = layers[i - 1]
            assert isinstance(conv, nn.Conv1d)
            scale = layer.weight.detach() / torch.sqrt(layer.running_var + layer.eps)
            with torch.no_grad():
                conv.weight.mul_(scale[:, None, None])
                conv.bias.copy_((conv.bias - layer.running_mean) * scale + layer.bias)
            layers[i] = nn.Identity()
    m.conv = nn.Sequential(*[layer for layer in layers if not isinstance(layer, nn.Identity)])
    return m


def count_macs(model: BearingLSTM, length: int = gen.SIGNAL_LENGTH) -> int:
    macs, n = 0, length
    for layer in model.conv:
        if isinstance(layer, nn.Conv1d):
            n = (n + 2 * layer.padding[0] - layer.kernel_size[0]) // layer.stride[0] + 1
            macs += n * layer.out_channels * layer.in_channels * layer.kernel_size[0]
    h, i = model.lstm.hidden_size, model.lstm.input_size
    macs += n * 4 * h * (i + h)
    macs += 2 * h * model.head_mean.out_features
    return int(macs)


# ------------------------------------------------------------------------------------------------
# training / evaluation
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_torch(model: nn.Module, X: np.ndarray, bs: int = 64) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(X), bs):
        out.append(model(torch.from_numpy(np.array(X[i : i + bs], dtype=np.float32))[:, None, :]).numpy())
    return np.concatenate(out)


def train(args, work: Path) -> tuple[BearingLSTM, dict]:
    torch.manual_seed(TORCH_SEED)
    rng = np.random.default_rng(TORCH_SEED)
    t0 = time.time()
    Xtr, ytr = cached_dataset(work, args.n_train_per_class, TRAIN_SEED, args.procs)
    Xva, yva = cached_dataset(work, args.n_val_per_class, VAL_SEED, args.procs)
    Xva_band = band_limit(Xva, VALIDATION_CUTOFF_HZ)
    t_data = time.time() - t0
    Xtr = np.ascontiguousarray(Xtr)  # into RAM (~1.8 GB for 400/class)
    model = BearingLSTM(hidden=args.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    n = len(ytr)
    steps_per_epoch = n // args.batch
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.15)
    best, best_state, history = -1.0, None, []
    t_train0 = time.time()
    for ep in range(args.epochs):
        model.train()
        perm = rng.permutation(n)
        tl, tc, t_ep = 0.0, 0, time.time()
        for s in range(steps_per_epoch):
            idx = np.sort(perm[s * args.batch : (s + 1) * args.batch])
            L = args.crop
            off = rng.integers(0, gen.SIGNAL_LENGTH - L + 1, size=len(idx))
            xb = np.stack([Xtr[i, o : o + L] for i, o in zip(idx, off)])
            xb *= rng.choice(np.array([-1.0, 1.0], np.float32), size=(len(idx), 1))  # sensor polarity
            xb *= np.exp(rng.uniform(-1.0, 1.0, size=(len(idx), 1))).astype(np.float32)  # scale
            limited = rng.random(len(idx)) < args.band_limit_p  # a recorder with a lower rate
            if limited.any():
                cut = rng.uniform(BAND_LIMIT_HZ[0], BAND_LIMIT_HZ[1], size=int(limited.sum()))
                xb[limited] = band_limit(xb[limited], cut)
            x = torch.from_numpy(xb)[:, None, :]
            y = torch.from_numpy(ytr[idx])
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tl += loss.item() * len(idx)
            tc += int((logits.argmax(1) == y).sum())
        va_full = float(np.mean(predict_torch(model, Xva).argmax(1) == yva))
        va_band = float(np.mean(predict_torch(model, Xva_band).argmax(1) == yva))
        va = (va_full + va_band) / 2  # checkpoint selection weighs both bands alike
        rec = {"epoch": ep + 1, "train_loss": tl / (steps_per_epoch * args.batch), "train_acc": tc / (steps_per_epoch * args.batch),
               "val_acc": va_full, "val_acc_band_limited": va_band, "epoch_s": round(time.time() - t_ep, 1)}
        history.append(rec)
        print(f"  epoch {ep + 1}/{args.epochs} loss {rec['train_loss']:.4f} train {rec['train_acc']:.4f} "
              f"val {va_full:.4f} val@6.4kHz {va_band:.4f} ({rec['epoch_s']}s)", flush=True)
        if va >= best:
            best, best_state = va, copy.deepcopy(model.state_dict())
    t_train = time.time() - t_train0
    model.load_state_dict(best_state)
    pred = predict_torch(model, Xva).argmax(1)
    print("  val per-class:", json.dumps(per_class(pred, yva)), flush=True)
    val_band = float(np.mean(predict_torch(model, Xva_band).argmax(1) == yva))
    torch.save({"state_dict": model.state_dict(), "hidden": args.hidden}, work / "model.pt")
    info = {
        "train_seed": TRAIN_SEED, "n_train": int(n), "n_train_per_class": args.n_train_per_class,
        "val_seed": VAL_SEED, "n_val": int(len(yva)), "val_accuracy": float(np.mean(pred == yva)),
        "val_accuracy_band_limited": val_band,
        "torch_seed": TORCH_SEED, "epochs": args.epochs, "batch_size": args.batch, "crop_length": args.crop,
        "optimizer": f"AdamW(lr max {args.lr}, wd 1e-4), OneCycle, grad clip 1.0",
        "loss": "cross-entropy, label smoothing 0.05",
        "augmentation": ("random crop, random polarity, random gain x e^U(-1,1), "
                         f"band limit (p {args.band_limit_p}: low-pass at U({BAND_LIMIT_HZ[0]:.0f}, {BAND_LIMIT_HZ[1]:.0f}) Hz, "
                         f"{BAND_LIMIT_TRANSITION_HZ:.0f} Hz raised-cosine edge)"),
        "torch_threads": torch.get_num_threads(),
        "data_generation_s": round(t_data, 1), "train_wall_s": round(t_train, 1), "history": history,
    }
    with open(work / "train_info.json", "w") as f:
        json.dump(info, f, indent=1)
    return model, info


# ------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------
def _prune_lstm_zero_state(model_proto) -> int:
    """Drop initial_h/initial_c inputs of LSTM nodes when they are computed zero tensors (the
    exporter materialises nn.LSTM's implicit zero state with shape ops); ONNX defines the missing
    inputs as zeros.  Then remove nodes that no longer feed any output.  Returns #nodes removed."""
    import onnx
    from onnx import numpy_helper

    g = model_proto.graph
    producers = {o: nd for nd in g.node for o in nd.output}
    inits = {i.name: i for i in g.initializer}

    def is_zero(name: str) -> bool:
        if name in inits:
            return not np.any(numpy_helper.to_array(inits[name]))
        nd = producers.get(name)
        if nd is None:
            return False
        if nd.op_type == "ConstantOfShape":
            val = [a for a in nd.attribute if a.name == "value"]
            return not val or not np.any(numpy_helper.to_array(val[0].t))
        if nd.op_type in ("Expand", "Reshape", "Unsqueeze", "Squeeze", "Identity", "Cast"):
            return is_zero(nd.input[0])
        if nd.op_type == "Constant":
            return not np.any(numpy_helper.to_array(nd.attribute[0].t))
        return False

    for nd in g.node:
        if nd.op_type == "LSTM":
            for k in (5, 6):
                if len(nd.input) > k and nd.input[k] and is_zero(nd.input[k]):
                    nd.input[k] = ""
            while nd.input and nd.input[-1] == "":
                nd.input.pop()
    # dead-node elimination
    needed = {o.name for o in g.output}
    keep = []
    for nd in reversed(list(g.node)):
        if any(o in needed for o in nd.output):
            keep.append(nd)
            needed.update(i for i in nd.input if i)
    removed = len(g.node) - len(keep)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    used = {i for nd in g.node for i in nd.input}
    dead_inits = [i for i in g.initializer if i.name not in used]
    for i in dead_inits:
        g.initializer.remove(i)
    onnx.checker.check_model(model_proto)
    return removed


def export(model: BearingLSTM, path: Path) -> BearingLSTM:
    import onnx

    fused = fold_batchnorm(model)
    x = torch.from_numpy(gen.make_dataset(1, REF_SEED)[0][:2])[:, None, :]
    with torch.no_grad():
        a, b = model.eval()(x), fused(x)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a - b).abs().max()
    tmp = str(path) + ".tmp"
    torch.onnx.export(
        fused, (x,), tmp, dynamo=False, opset_version=OPSET, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch", 2: "length"}, "logits": {0: "batch"}}, do_constant_folding=True,
    )
    m = onnx.load(tmp)
    removed = _prune_lstm_zero_state(m)
    m.producer_name = "pfd-edge models/scripts/train.py"
    m.doc_string = "bearing-lstm: raw vibration [batch,1,length] @20480 Hz -> logits [batch,11]"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    os.remove(tmp)
    print(f"  exported {path} ({path.stat().st_size} bytes), pruned {removed} zero-state nodes", flush=True)
    return fused


def verify_and_document(model: BearingLSTM, fused: BearingLSTM, args, work: Path, train_info: dict) -> None:
    import onnx

    path = OUT_DIR / "model.onnx"
    sess = ort_session(path)
    Xref, yref = gen.make_dataset(1, REF_SEED)
    # 1. ORT vs torch, batch 1 and batch 4
    with torch.no_grad():
        t_all = model.eval()(torch.from_numpy(Xref)[:, None, :]).numpy()
    worst = 0.0
    for bs in (1, 4):
        for i in range(0, 8, bs):
            o = sess.run(["logits"], {"input": Xref[i : i + bs, None, :]})[0]
            np.testing.assert_allclose(o, t_all[i : i + bs], rtol=RTOL, atol=ATOL)
            worst = max(worst, float(np.max(np.abs(o - t_all[i : i + bs]))))
    # other lengths (dynamic axis) and the minimum length
    for L in (MIN_LENGTH, 20480, 51200 + 17):
        xs = Xref[:3, :L]
        with torch.no_grad():
            tt = fused(torch.from_numpy(np.ascontiguousarray(xs))[:, None, :]).numpy()
        np.testing.assert_allclose(sess.run(["logits"], {"input": np.ascontiguousarray(xs)[:, None, :]})[0], tt, rtol=RTOL, atol=ATOL)
    print(f"  ORT == torch (rtol {RTOL}, atol {ATOL}) for batch 1/4 and lengths {MIN_LENGTH}/20480/51217; max abs diff {worst:.2e}")

    # 2. reference vectors: onnxruntime logits, batch 1 each
    ref_logits = np.concatenate([sess.run(["logits"], {"input": Xref[i : i + 1, None, :]})[0] for i in range(len(Xref))])
    Xref.astype("<f4").tofile(OUT_DIR / "reference_inputs.f32")
    ref = {
        "inputs_file": "reference_inputs.f32", "count": int(len(Xref)), "length": gen.SIGNAL_LENGTH,
        "dtype": "float32 little-endian, row-major [count, length]",
        "generator": "models/scripts/generator.py make_dataset(1, seed)", "seed": REF_SEED,
        "labels": [int(v) for v in yref], "class_names": [gen.CLASS_NAMES[int(v)] for v in yref],
        "predicted": [int(v) for v in ref_logits.argmax(1)],
        "logits": [[float(v) for v in row] for row in ref_logits], "rtol": RTOL, "atol": ATOL,
    }
    with open(OUT_DIR / "reference.json", "w") as f:
        json.dump(ref, f, indent=1)

    # 3. held-out test set, on the exported ONNX file
    Xte, yte = cached_dataset(work, args.n_test_per_class, TEST_SEED, args.procs)
    t0 = time.time()
    pred = ort_predict(sess, Xte).argmax(1)
    t_eval = time.time() - t0
    acc = float(np.mean(pred == yte))
    pc = per_class(pred, yte)
    cm = confusion(pred, yte)
    print(f"  held-out (seed {TEST_SEED}, n={len(yte)}) ORT accuracy {acc:.4f} ({t_eval:.1f}s)")
    for c in range(gen.NUM_CLASSES):
        print(f"    {c:2d} {gen.CLASS_NAMES[c]:26s} {pc[gen.CLASS_NAMES[c]]:.3f}  {cm[c].tolist()}")
    pred_band = ort_predict_band_limited(sess, Xte, VALIDATION_CUTOFF_HZ).argmax(1)
    acc_band = float(np.mean(pred_band == yte))
    cm_band = confusion(pred_band, yte)
    print(f"  held-out low-passed at {VALIDATION_CUTOFF_HZ:.0f} Hz: ORT accuracy {acc_band:.4f}")
    for c in range(gen.NUM_CLASSES):
        print(f"    {c:2d} {gen.CLASS_NAMES[c]:26s} {cm_band[c].tolist()}")

    # 4. latency, batch 1, one thread
    x1 = Xte[:1][:, None, :].copy()
    for _ in range(5):
        sess.run(["logits"], {"input": x1})
    lat = []
    for _ in range(50):
        t = time.perf_counter()
        sess.run(["logits"], {"input": x1})
        lat.append((time.perf_counter() - t) * 1e3)
    lat_ms = float(np.median(lat))

    # 5. model card
    mp_ = onnx.load(str(path))
    ops = sorted({nd.op_type for nd in mp_.graph.node})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    n_params = int(sum(p.numel() for p in model.parameters()))
    n_params_onnx = int(sum(int(np.prod(i.dims)) for i in mp_.graph.initializer))
    card = {
        "name": "bearing-lstm",
        "version": "1.0.0",
        "model_type": "lstm",
        "architecture": (
            "in-graph mean removal + RMS normalisation; Conv1d(1->16,k32,s16)+ReLU, Conv1d(16->32,k8,s4)+ReLU, "
            f"Conv1d(32->32,k16,s8)+ReLU (BatchNorm folded; 102400 samples -> 200 steps); LSTM(32->{args.hidden}, 1 layer); "
            "logits = Linear(mean_t LSTM output) + Linear(last hidden state)"
        ),
        "framework": f"pytorch {torch.__version__.split('+')[0]} -> onnx opset {OPSET}",
        "input": {"name": "input", "shape": ["batch", 1, "length"], "dtype": "float32", "length": gen.SIGNAL_LENGTH,
                  "min_length": MIN_LENGTH},
        "output": {"name": "logits", "shape": ["batch", gen.NUM_CLASSES], "dtype": "float32"},
        "sample_rate_hz": gen.SAMPLE_RATE,
        "min_bandwidth_hz": VALIDATION_CUTOFF_HZ,  # /diagnose warns about recordings holding less
        "signal_length": gen.SIGNAL_LENGTH,
        "num_classes": gen.NUM_CLASSES,
        "class_names": gen.CLASS_NAMES,
        "class_keys": gen.CLASS_KEYS,
        "num_parameters": n_params,
        "num_parameters_onnx": n_params_onnx,
        "macs_per_record": count_macs(model),
        "onnx_ops": ops,
        "size_bytes": path.stat().st_size,
        "training": {"generator": "models/scripts/generator.py", "script": "models/scripts/train.py",
                     **{k: v for k, v in train_info.items() if k != "history"}},
        "evaluation": {
            "runtime": "onnxruntime " + __import__("onnxruntime").__version__ + " on model.onnx",
            "heldout_seed": TEST_SEED, "n_heldout": int(len(yte)), "accuracy": acc,
            "per_class_accuracy": pc, "confusion_matrix": cm.tolist(),
            "confusion_matrix_axes": "rows = true class index, columns = predicted class index",
            "ort_latency_ms_batch1_median": round(lat_ms, 3), "ort_threads": 1,
            "band_limited": {"cutoff_hz": VALIDATION_CUTOFF_HZ, "accuracy": acc_band,
                             "per_class_accuracy": per_class(pred_band, yte), "confusion_matrix": cm_band.tolist()},
        },
        "reference": {"file": "reference.json", "inputs_file": "reference_inputs.f32", "seed": REF_SEED, "rtol": RTOL, "atol": ATOL},
        "sha256": sha,
    }
    with open(OUT_DIR / "model.json", "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"  ops: {ops}")
    print(f"  params {n_params} (onnx initializers {n_params_onnx}), MACs/record {card['macs_per_record']}, "
          f"size {card['size_bytes']} B, ORT batch-1 median {lat_ms:.2f} ms, sha256 {sha}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/pfd-train", help="scratch dir for datasets/checkpoints (not the repo)")
    p.add_argument("--n-train-per-class", type=int, default=400)
    p.add_argument("--n-val-per-class", type=int, default=40)
    p.add_argument("--n-test-per-class", type=int, default=200)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--crop", type=int, default=32768, help="training crop length (inference uses the full 102400)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--band-limit-p", type=float, default=0.35,
                   help="share of training crops low-passed like a lower-rate recording (see BAND_LIMIT_HZ)")
    p.add_argument("--hidden", type=int, default=48)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--procs", type=int, default=2, help="processes for data generation")
    p.add_argument("--export-only", action="store_true", help="skip training; load <work>/model.pt")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if args.export_only:
        ck = torch.load(work / "model.pt")
        args.hidden = ck["hidden"]
        model = BearingLSTM(hidden=args.hidden)
        model.load_state_dict(ck["state_dict"])
        with open(work / "train_info.json") as f:
            info = json.load(f)
    else:
        print("training", flush=True)
        model, info = train(args, work)
    model.eval()
    print("exporting", flush=True)
    fused = export(model, OUT_DIR / "model.onnx")
    print("verifying", flush=True)
    verify_and_document(model, fused, args, work, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
