"""Training the wear classifier from scratch and exporting it to ONNX with its JSON contract.

``python -m portal.vision.train train --out models/wear-v1`` generates the
synthetic training and validation sets (fixed seeds), trains ``WearNet``,
exports ``models/wear-v1.onnx``, chooses the decision threshold on the
validation split, writes ``models/wear-v1.json`` and measures the exported
model on the two evaluation sets (see ``evaluate``).

With ``--photos DIR`` (a folder written by ``returns-portal wear
export-dataset``) the merchant's labelled photos are mixed into training, and a
fifth of them, set aside, choose the threshold instead of synthetic images.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from portal.vision.classifier import WearModel, file_sha256, model_paths
from portal.vision.train import evaluate as ev
from portal.vision.train import synth
from portal.vision.train.model import INPUT_NAME, INPUT_SIZE, MAP_STRIDE, MEAN, OUTPUT_NAMES, STD, WearNet, param_count

TRAIN_SEED = 1001
VAL_SEED = 2001
TORCH_SEED = 0
SPLIT_SEED = 5001
OPSET = 17
MODEL_VERSION = "1.0.0"


def _cpuinfo(field: str) -> str:
    """A field of the first processor in /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith(field)), "")
    except OSError:
        return ""


def _machine() -> dict:
    cpu = platform.processor() or _cpuinfo("model name")
    return {
        "os": platform.system(),
        "arch": platform.machine(),
        "cpu": cpu or "unknown",
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__.split("+")[0],
        "accelerator": "none (CPU)",
    }


def _bf16_fast() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where ``--bf16`` pays."""
    flags = _cpuinfo("flags").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _augment(x: torch.Tensor, m: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and transposition, the same for the image and its mask."""
    n = x.shape[0]
    for op in (lambda t: t.flip(3), lambda t: t.flip(2), lambda t: t.transpose(2, 3)):
        pick = (torch.rand(n, generator=g) < 0.5).view(n, 1, 1, 1)
        x = torch.where(pick, op(x), x)
        m = torch.where(pick, op(m), m)
    return x, m


def _to_input(batch_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (batch_uint8.permute(0, 3, 1, 2).float().div_(255.0) - mean) / std


def _colour_jitter(x01: torch.Tensor, g: torch.Generator, strength: float) -> torch.Tensor:
    """Per-image exposure, contrast and white balance, and sometimes swapped colour channels (0..1 input)."""
    n = x01.shape[0]
    gain = 1 + strength * (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * 0.35
    contrast = 1 + strength * (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * 0.35
    balance = 1 + strength * (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1) * 0.1
    mid = x01.mean(dim=(1, 2, 3), keepdim=True)
    x01 = ((x01 - mid) * contrast + mid) * gain * balance
    swap = torch.rand(n, generator=g) < 0.3 * strength
    if bool(swap.any()):
        order = torch.randperm(3, generator=g)
        x01 = torch.where(swap.view(n, 1, 1, 1), x01[:, order], x01)
    return x01.clamp_(0.0, 1.0)


@torch.no_grad()
def _torch_probs(model: WearNet, images: np.ndarray, mean, std, batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = _to_input(torch.from_numpy(images[i : i + batch]), mean, std)
        p, _ = model(x.contiguous(memory_format=torch.channels_last))
        out.append(p.squeeze(1).numpy())
    model.train()
    return np.concatenate(out)


def _split_photos(labels: np.ndarray, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded split of the merchant's photos into (train, validation) indices."""
    rng = np.random.default_rng(SPLIT_SEED)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for value in (0, 1):
        idx = np.flatnonzero(labels == value)
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction)) if len(idx) >= 5 else 0
        val_idx.extend(idx[:k])
        train_idx.extend(idx[k:])
    return np.sort(np.array(train_idx, np.int64)), np.sort(np.array(val_idx, np.int64))


def export_onnx(model: WearNet, path: Path, size: int) -> None:
    import onnx  # noqa: PLC0415 - the optional train extra, only needed to export

    model = model.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]  # memory_format: missing from the stubs
    dummy = torch.zeros(1, 3, size, size)
    tmp = path.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of one that needs extra packages;
        # its output for this plain convolutional graph is the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAMES[0]: {0: "batch"}, OUTPUT_NAMES[1]: {0: "batch"}},
        )
    onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    os.replace(tmp, path)


def _contract(name: str, version: str, size: int, threshold: float, onnx_path: Path) -> dict:
    map_size = size // MAP_STRIDE
    return {
        "schema": 1,
        "name": name,
        "version": version,
        "description": "Wear-mark classifier for photos of returned items (scuffs, stains, pilling, creases, "
        "fading, fraying). Advice for staff: it never rejects a return.",
        "file": onnx_path.name,
        "file_size_bytes": onnx_path.stat().st_size,
        "sha256": file_sha256(onnx_path),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, size, size],
            "size": size,
            "channels": 3,
            "channel_order": "RGB",
            "layout": "NCHW",
            "dtype": "float32",
            "scale": "pixel / 255",
            "mean": list(MEAN),
            "std": list(STD),
            "preprocessing": f"centre square of the photo, resized to {size}x{size} (bilinear, antialiased), "
            "RGB, then (pixel / 255 - mean) / std per channel",
        },
        "outputs": {
            "probability": {
                "name": OUTPUT_NAMES[0],
                "shape": ["batch", 1],
                "meaning": "probability that the photo shows wear marks (sigmoid)",
            },
            "score_map": {
                "name": OUTPUT_NAMES[1],
                "shape": ["batch", 1, map_size, map_size],
                "size": map_size,
                "meaning": "per-location wear probability over the centre square (where it looked); "
                "the probability is a smooth maximum (log-sum-exp) of its logits",
            },
        },
        "labels": ["no_wear", "wear"],
        "threshold": round(float(threshold), 4),
    }


def train(args) -> int:
    started = time.perf_counter()
    out = Path(args.out)
    if out.suffix in (".onnx", ".json"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, onnx_path = model_paths(out)
    name = args.name or out.name
    size, map_size = INPUT_SIZE, INPUT_SIZE // MAP_STRIDE
    timings: dict[str, float] = {}

    # Data first, then torch and its threads.
    t0 = time.perf_counter()
    print(
        f"generating {args.train_size} training and {args.val_size} validation images "
        f"({synth.GENERATOR_VERSION}, {args.workers} workers)...",
        flush=True,
    )
    train_marks = synth.TRAIN_MARKS + (synth.AUX_MARKS if args.aux_marks else ())
    negative_weights = _weights(args.negative_weights)
    train_x, train_y, train_m = synth.generate(
        args.train_size,
        TRAIN_SEED,
        textures=synth.TRAIN_TEXTURES,
        marks=train_marks,
        size=size,
        mask_size=map_size,
        workers=args.workers,
        negative_rate=args.negative_rate,
        negative_weights=negative_weights,
    )
    val_x, val_y, _ = synth.generate(
        args.val_size,
        VAL_SEED,
        textures=synth.TRAIN_TEXTURES,
        marks=synth.TRAIN_MARKS,
        size=size,
        mask_size=map_size,
        workers=args.workers,
    )
    map_weight = np.ones(len(train_x), np.float32)
    photos_info = None
    if args.photos:
        p_x, p_y, _ = ev.load_photo_folder(args.photos, size)
        tr, va = _split_photos(p_y)
        reps = max(1, args.photo_repeat)
        train_x = np.concatenate([train_x] + [p_x[tr]] * reps)
        train_y = np.concatenate([train_y] + [p_y[tr]] * reps)
        train_m = np.concatenate([train_m, np.zeros((len(tr) * reps, map_size, map_size), np.float32)])
        map_weight = np.concatenate([map_weight, np.zeros(len(tr) * reps, np.float32)])  # no masks for photos
        photos_info = {
            "photos": len(p_y),
            "worn": int(p_y.sum()),
            "train": int(len(tr)),
            "repeat": reps,
            "validation": int(len(va)),
        }
        if len(va):
            val_x, val_y = p_x[va], p_y[va]
        print(f"added {len(tr)} labelled photos (x{reps}); {len(va)} set aside for the threshold", flush=True)
    timings["generate"] = time.perf_counter() - t0

    torch.set_num_threads(args.threads)
    if args.bf16 and not _bf16_fast():
        print("note: this CPU has no bfloat16 instructions; --bf16 will be slower here, not faster", flush=True)
    torch.manual_seed(TORCH_SEED)
    g = torch.Generator().manual_seed(TORCH_SEED)
    model = WearNet(width=args.width).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    n_params = param_count(model)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    xs, ys = torch.from_numpy(train_x), torch.from_numpy(train_y).float()
    ms, ws = torch.from_numpy(train_m), torch.from_numpy(map_weight)
    steps_per_epoch = len(xs) // args.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    pos_weight = torch.tensor(3.0)
    print(
        f"training WearNet ({n_params} parameters) for {args.epochs} epochs of {steps_per_epoch} steps, "
        f"{args.threads} threads",
        flush=True,
    )
    t0 = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xs), generator=g)
        total, seen = 0.0, 0
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch_size : (step + 1) * args.batch_size]
            if args.colour_jitter > 0:
                x01 = _colour_jitter(xs[idx].permute(0, 3, 1, 2).float().div_(255.0), g, args.colour_jitter)
                x = (x01 - mean) / std
            else:
                x = _to_input(xs[idx], mean, std)
            m = ms[idx].unsqueeze(1)
            x, m = _augment(x, m, g)
            x = x.contiguous(memory_format=torch.channels_last)  # much faster convolutions on CPU
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logit, map_logits = model.logits(x)
            logit, map_logits = logit.float(), map_logits.float()  # the losses in float32 either way
            loss_img = F.binary_cross_entropy_with_logits(logit.squeeze(1), ys[idx])
            target = (m * 2.0).clamp(0.0, 1.0)
            per_map = F.binary_cross_entropy_with_logits(
                map_logits, target, pos_weight=pos_weight, reduction="none"
            ).mean(dim=(1, 2, 3))
            w = ws[idx]
            loss = loss_img + args.map_loss * (per_map * w).sum() / w.sum().clamp(min=1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if args.log_every and (step + 1) % args.log_every == 0:
                print(
                    f"  epoch {epoch + 1} step {step + 1}/{steps_per_epoch} loss {total / seen:.4f} "
                    f"({time.perf_counter() - t0:.0f}s)",
                    flush=True,
                )
        probs = _torch_probs(model, val_x, mean, std)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / max(seen, 1):.4f}, validation roc_auc "
            f"{ev.roc_auc(val_y, probs):.4f} ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    timings["train"] = time.perf_counter() - t0

    # Export, then choose the threshold with the exported model, through the portal's own code path.
    t0 = time.perf_counter()
    export_onnx(model, onnx_path, size)
    json_path.write_text(
        json.dumps(_contract(name, args.version, size, 0.5, onnx_path), indent=2) + "\n", encoding="utf-8"
    )
    exported = WearModel.load(out)
    val_probs = ev.predict(exported, val_x)
    torch_val = _torch_probs(model, val_x[:256], mean, std)
    drift = float(np.abs(torch_val - val_probs[:256]).max())
    if drift > 1e-3:
        raise SystemExit(f"exported model disagrees with the trained one (max difference {drift:.2e})")
    threshold = ev.youden_threshold(val_y.tolist(), val_probs.tolist())
    contract = _contract(name, args.version, size, threshold, onnx_path)
    timings["export_and_threshold"] = time.perf_counter() - t0
    val_source = (
        (f"the merchant's labelled photos set aside from training (a stratified fifth, seed {SPLIT_SEED})")
        if photos_info and photos_info["validation"]
        else (f"a synthetic validation split (seed {VAL_SEED}, {len(val_y)} images, training textures and marks)")
    )
    contract["threshold_selection"] = (
        f"chosen on {val_source} to maximise recall minus false-positive rate "
        "(Youden's J); not tuned on the evaluation sets"
    )
    contract["validation"] = ev.summarise(val_y, val_probs, threshold)
    contract["training_data"] = (
        "Trained only on synthetic, procedurally generated images of fabric and leather surfaces; "
        + (
            "besides the evaluated mark types, training-only damage (tears, holes, snags, worn-through edges; "
            "drawn by their own code, never the held-out fraying) teaches broken edges and loose threads in general; "
            if args.aux_marks
            else ""
        )
        + (
            "plus the merchant's labelled photos listed under training.photos. "
            if photos_info
            else "it has never seen a real photo. "
        )
        + "Scores on real photos are advice for staff and must be checked against warehouse grades."
    )
    contract["training"] = {
        "command": "python -m portal.vision.train train " + " ".join(shlex.quote(a) for a in args.argv),
        "generator_version": synth.GENERATOR_VERSION,
        "seeds": {
            "train": TRAIN_SEED,
            "validation": VAL_SEED,
            "torch": TORCH_SEED,
            "evaluation_in_distribution": ev.TEST_SEED,
            "evaluation_heldout": ev.HELDOUT_SEED,
        },
        "train_size": int(len(train_x)),
        "synthetic_train_size": int(args.train_size),
        "validation_size": int(len(val_y)),
        "textures": list(synth.TRAIN_TEXTURES),
        "marks": list(synth.TRAIN_MARKS),
        "training_only_marks": list(synth.AUX_MARKS) if args.aux_marks else [],
        "hard_negatives": list(synth.NEGATIVES),
        "hard_negative_rate": args.negative_rate,
        "hard_negative_weights": dict(
            zip(synth.NEGATIVES, negative_weights or [1.0] * len(synth.NEGATIVES), strict=True)
        ),
        "heldout_textures": list(synth.HELDOUT_TEXTURES),
        "heldout_marks": list(synth.HELDOUT_MARKS),
        "photos": photos_info,
        "architecture": f"WearNet (width {args.width}): 7 conv blocks (3x3, BN, ReLU; strides 2,2,1,2,1,1,1; dilations 1,1,1,1,1,2,4), "
        "global context, 1x1 head to a score map; log-sum-exp pooling to the probability",
        "parameters": n_params,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"AdamW, one-cycle learning rate (max {args.lr}), weight decay 1e-4",
        "loss": f"binary cross-entropy on the image + {args.map_loss} x binary cross-entropy of the score map "
        "against the generator's coarse mark masks",
        "augmentation": "random flips and transposition"
        + (
            f", colour jitter (strength {args.colour_jitter}: exposure, contrast, white balance, swapped channels)"
            if args.colour_jitter > 0
            else ""
        )
        + " (on top of the generator's viewpoint, light, blur, noise and JPEG variation)",
        "precision": "bfloat16 autocast for the forward pass (weights, optimiser and losses in float32)"
        if args.bf16
        else "float32",
        "onnx_opset": OPSET,
        "machine": _machine(),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    json_path.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes) and {json_path}; threshold {threshold:.4f}", flush=True
    )

    if not args.no_eval:
        t0 = time.perf_counter()
        results = ev.evaluate(out, n=args.eval_size, workers=args.workers)
        timings["evaluate"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        contract["training"]["seconds"] = {k: round(v, 1) for k, v in timings.items()}
        json_path.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")
        cmd = f"python -m portal.vision.train evaluate --model {args.out}"
        if args.eval_size != ev.EVAL_SIZE:
            cmd += f" --n {args.eval_size}"
        ev.write_metrics(out, results, cmd + " --write")
    else:
        timings["total"] = time.perf_counter() - started
        contract["training"]["seconds"] = {k: round(v, 1) for k, v in timings.items()}
        json_path.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")
    print(f"done in {timings['total'] / 60:.1f} min", flush=True)
    return 0


def add_arguments(p) -> None:
    p.add_argument("--out", required=True, help="output path without extension, e.g. models/wear-v1")
    p.add_argument("--name", help="model name in the contract (default: the file name)")
    p.add_argument("--version", default=MODEL_VERSION, help="model version in the contract")
    p.add_argument("--train-size", type=int, default=48000, help="synthetic training images")
    p.add_argument("--val-size", type=int, default=3000, help="synthetic validation images (threshold)")
    p.add_argument("--eval-size", type=int, default=ev.EVAL_SIZE, help="images per evaluation set")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--map-loss", type=float, default=1.0, help="weight of the score-map loss")
    p.add_argument("--width", type=int, default=24, help="channels of the first block (the net scales with it)")
    p.add_argument("--aux-marks", action="store_true", help="also train on the training-only damage marks")
    p.add_argument(
        "--negative-rate", type=float, default=synth.HARD_NEGATIVE_RATE, help="share of images with hard negatives"
    )
    p.add_argument(
        "--negative-weights",
        default="",
        help=f"relative frequency of each hard negative ({','.join(synth.NEGATIVES)}), e.g. 2,2,1,1",
    )
    p.add_argument("--colour-jitter", type=float, default=0.0, help="colour augmentation strength (0: off)")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast for the forward pass (about twice as fast on CPUs with AMX or AVX-512 BF16)",
    )
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads (at most 2)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="generator processes")
    p.add_argument("--photos", help="folder of labelled photos (labels.csv, or wear/ and no_wear/) to train on too")
    p.add_argument("--photo-repeat", type=int, default=5, help="how many times each labelled photo is repeated")
    p.add_argument("--log-every", type=int, default=100, help="print the loss every N steps (0: per epoch only)")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation sets after export")


def _weights(text: str) -> list[float] | None:
    if not text:
        return None
    try:
        weights = [float(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--negative-weights: numbers separated by commas, got {text!r}") from None
    if len(weights) != len(synth.NEGATIVES) or any(w < 0 for w in weights) or not sum(weights):
        raise SystemExit(f"--negative-weights: one non-negative weight for each of {', '.join(synth.NEGATIVES)}")
    return weights


def main(args) -> int:
    args.threads = max(1, min(args.threads, 2))
    if not getattr(args, "argv", None):
        args.argv = ["--out", args.out]
    return train(args)
