"""Measuring the shipped ONNX model the way the portal runs it (no torch needed).

Two synthetic sets, never seen in training (other seeds):

- ``in_distribution``: same generator, same textures and mark types as training;
- ``heldout``: only held-out combinations (suede, with any mark; fraying, on any
  texture; clean suede), which the model never saw in any form.

Optionally a folder of labelled real photos (``--photos``), as written by
``returns-portal wear export-dataset``.

Accuracy, ROC AUC, precision and recall at the contract's threshold, plus
recall per mark type and false-positive rate per hard-negative kind, the
calibration (a reliability table over ten probability bins and the expected
calibration error) and the inference time per image as the portal runs it;
with ``--by-visibility``, the ROC AUC and recall by how plainly the marks show
(each worn image compared with the same image drawn without its marks).
Several ``--model`` options measure several models on the same images.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from portal.vision.classifier import WearModel, model_paths, prepare_image
from portal.vision.train import synth

TEST_SEED = 3001
HELDOUT_SEED = 4001
EVAL_SIZE = 3000


# --- metrics (numpy only) ------------------------------------------------------------------


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    ranks = avg_rank[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def at_threshold(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict:
    y = np.asarray(labels).astype(bool)
    p = np.asarray(scores, np.float64) >= threshold
    tp, fp = int((p & y).sum()), int((p & ~y).sum())
    fn, tn = int((~p & y).sum()), int((~p & ~y).sum())
    n = len(y)
    return {
        "accuracy": (tp + tn) / n if n else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "false_positive_rate": fp / (fp + tn) if fp + tn else float("nan"),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def youden_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The threshold that maximises recall - false-positive rate (Youden's J), midway between scores."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    distinct = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # last index of each run of equal scores
    j = tp / max(int(y.sum()), 1) - fp / max(int((~y).sum()), 1)
    j = np.where(distinct, j, -np.inf)
    i = int(np.argmax(j))
    upper = s_sorted[i]
    lower = s_sorted[i + 1] if i + 1 < len(s_sorted) else 0.0
    return float((upper + lower) / 2.0)


def calibration(labels: Sequence[int], scores: Sequence[float], bins: int = 10) -> dict:
    """Reliability table (equal-width probability bins) and expected calibration error.

    Per bin: how many images, their mean predicted probability and the share that
    really show wear. The ECE is the mean gap between the two, weighted by the bin's share.
    """
    y = np.asarray(labels, np.float64)
    s = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
    index = np.minimum((s * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        pick = index == b
        n = int(pick.sum())
        row: dict[str, object] = {"from": round(b / bins, 2), "to": round((b + 1) / bins, 2), "n": n}
        if n:
            mean_p, observed = float(s[pick].mean()), float(y[pick].mean())
            row.update({"mean_probability": mean_p, "observed_wear_rate": observed})
            ece += n / max(len(s), 1) * abs(mean_p - observed)
        table.append(row)
    return {"expected_calibration_error": ece, "bins": table}


def summarise(labels, scores, threshold: float, specs: Sequence[synth.Spec] | None = None) -> dict:
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    out: dict[str, object] = {"n": int(len(labels)), "positives": int(labels.sum()), "roc_auc": roc_auc(labels, scores)}
    out.update(at_threshold(labels, scores, threshold))
    out["calibration"] = calibration(labels, scores)
    if specs is not None:
        flagged = scores >= threshold
        per_mark, per_negative, per_texture = {}, {}, {}
        for mark in synth.MARKS:
            idx = [i for i, s in enumerate(specs) if mark in s.marks]
            if idx:
                per_mark[mark] = {"n": len(idx), "recall": float(flagged[idx].mean())}
        for neg in ("none", *synth.NEGATIVES):
            idx = [
                i
                for i, s in enumerate(specs)
                if not s.marks and ((neg == "none" and not s.negatives) or neg in s.negatives)
            ]
            if idx:
                per_negative[neg] = {"n": len(idx), "false_positive_rate": float(flagged[idx].mean())}
        for tex in synth.TEXTURES:
            idx = [i for i, s in enumerate(specs) if s.texture == tex]
            if idx:
                per_texture[tex] = {"n": len(idx), "accuracy": float((flagged[idx] == labels[idx].astype(bool)).mean())}
        out["recall_by_mark"] = per_mark
        out["false_positive_rate_by_negative"] = per_negative
        out["accuracy_by_texture"] = per_texture
    return _rounded(out)


def mark_visibility(images: np.ndarray, unmarked: np.ndarray) -> np.ndarray:
    """How much each image's marks change it: the largest luminance difference (0-255) between the
    image and the same image drawn without its marks (``synth.render_all(..., marks_drawn=False)``),
    averaged over 3x3 pixels first so that lone JPEG differences do not count; 0 for a clean image."""
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    diff = np.abs(images.astype(np.float32) @ weights - unmarked.astype(np.float32) @ weights)
    padded = np.pad(diff, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = diff.shape[1:]
    local = np.zeros_like(diff)
    for i in range(3):
        for j in range(3):
            local += padded[:, i : i + h, j : j + w]
    return (local / 9.0).reshape(len(diff), -1).max(axis=1)


def by_visibility(labels, scores, visibility, threshold: float, specs: Sequence[synth.Spec], parts: int = 5) -> dict:
    """What bounds the ROC AUC: the worn images in ``parts`` equal groups from the faintest marks to the
    plainest, each measured against every clean image (ROC AUC) and at the threshold (recall); and
    the ROC AUC of all worn images against the clean images that show no hard negative."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, np.float64)
    visibility = np.asarray(visibility, np.float64)
    worn = np.flatnonzero(labels)
    worn = worn[np.argsort(visibility[worn], kind="stable")]
    clean = scores[~labels]
    groups = []
    for part in np.array_split(worn, parts):
        if len(part):
            both = np.concatenate([scores[part], clean])
            marked = np.concatenate([np.ones(len(part)), np.zeros(len(clean))])
            groups.append(
                {
                    "from": float(visibility[part].min()),
                    "to": float(visibility[part].max()),
                    "n": int(len(part)),
                    "roc_auc": roc_auc(marked, both),
                    "recall": float((scores[part] >= threshold).mean()),
                }
            )
    plain = np.array([not s.marks and not s.negatives for s in specs])
    keep = labels | plain
    return _rounded(
        {
            "measure": "peak luminance change (0-255, 3x3 mean) between the photo and the same photo without its marks",
            "groups": groups,
            "roc_auc_without_hard_negatives": roc_auc(labels[keep], scores[keep]),
        }
    )


def _rounded(obj):
    if isinstance(obj, float):
        return None if obj != obj else round(obj, 4)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


# --- running the model ---------------------------------------------------------------------


def predict(model: WearModel, images: np.ndarray | Sequence[Image.Image], batch: int = 64) -> np.ndarray:
    """Wear probabilities through the production path (``WearModel.score``)."""
    out: list[float] = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        pil = [im if isinstance(im, Image.Image) else Image.fromarray(im) for im in chunk]
        out.extend(s.probability for s in model.score(pil))
    return np.asarray(out, np.float64)


def synthetic_sets(n: int = EVAL_SIZE, workers: int = 2, size: int = 128, cache: str | Path | None = None) -> dict:
    """The two evaluation sets: name -> (images, labels, specs, description).

    With ``cache`` (an ``.npz`` file) the images are kept there and read back on
    the next run with the same size, count and generator version.
    """
    if cache is not None:
        return _cached_sets(Path(cache), n, workers, size)
    images, labels, _, specs = synth.generate(
        n,
        TEST_SEED,
        textures=synth.TRAIN_TEXTURES,
        marks=synth.TRAIN_MARKS,
        size=size,
        workers=workers,
        with_specs=True,
    )
    h_images, h_labels, _, h_specs = synth.generate_heldout(
        n, HELDOUT_SEED, size=size, workers=workers, with_specs=True
    )
    return {
        "in_distribution": (
            images,
            labels,
            specs,
            {
                "seed": TEST_SEED,
                "textures": list(synth.TRAIN_TEXTURES),
                "marks": list(synth.TRAIN_MARKS),
                "about": "same generator, textures and mark types as training; other seed",
            },
        ),
        "heldout": (
            h_images,
            h_labels,
            h_specs,
            {
                "seed": HELDOUT_SEED,
                "heldout_textures": list(synth.HELDOUT_TEXTURES),
                "heldout_marks": list(synth.HELDOUT_MARKS),
                "about": "only held-out combinations: held-out textures (clean or with any mark) "
                "and held-out mark types on any texture; none seen in training",
            },
        ),
    }


def _cached_sets(path: Path, n: int, workers: int, size: int) -> dict:
    key = f"{synth.GENERATOR_VERSION}|{n}|{size}|{TEST_SEED}|{HELDOUT_SEED}"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) == key:
                about = json.loads(str(data["about"]))
                return {
                    name: (
                        data[f"{name}_images"],
                        data[f"{name}_labels"],
                        [synth.Spec(t, tuple(m), tuple(g)) for t, m, g in json.loads(str(data[f"{name}_specs"]))],
                        about[name],
                    )
                    for name in about
                }
    sets = synthetic_sets(n, workers, size)
    arrays: dict[str, Any] = {
        "key": np.array(key),
        "about": np.array(json.dumps({name: v[3] for name, v in sets.items()})),
    }
    for name, (images, labels, specs, _) in sets.items():
        arrays[f"{name}_images"] = images
        arrays[f"{name}_labels"] = labels
        arrays[f"{name}_specs"] = np.array(json.dumps([[s.texture, s.marks, s.negatives] for s in specs]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return sets


def load_photo_folder(directory: str | Path, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labelled photos: ``labels.csv`` (file,label) as exported by the portal, or ``wear/`` and ``no_wear/`` folders."""
    directory = Path(directory)
    rows: list[tuple[str, int]] = []
    index = directory / "labels.csv"
    if index.is_file():
        with open(index, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                label = (row.get("label") or "").strip()
                if label in ("wear", "no_wear"):
                    rows.append((row["file"], int(label == "wear")))
    else:
        for label, value in (("wear", 1), ("no_wear", 0)):
            for p in sorted((directory / label).glob("*")):
                if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
                    rows.append((f"{label}/{p.name}", value))
    images, labels, names = [], [], []
    for name, value in rows:
        try:
            with Image.open(directory / name) as im:
                images.append(prepare_image(im.convert("RGB"), size))
        except (OSError, ValueError):
            continue
        labels.append(value)
        names.append(name)
    if not images:
        raise SystemExit(f"no labelled photos found in {directory} (labels.csv, or wear/ and no_wear/ folders)")
    return np.stack(images), np.asarray(labels, np.int64), names


def inference_ms(model: WearModel, images: np.ndarray, batch: int = 1, rounds: int = 3) -> float:
    """Median milliseconds per image through ``WearModel.score`` (one thread, as in the portal)."""
    pil = [Image.fromarray(im) for im in images]
    model.score(pil[:batch])  # warm up the session
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(0, len(pil), batch):
            model.score(pil[i : i + batch])
        per_round.append((time.perf_counter() - started) * 1000.0 / len(pil))
    return float(np.median(per_round))


def evaluate(
    model_path: str | Path,
    n: int = EVAL_SIZE,
    workers: int = 2,
    photos: str | Path | None = None,
    verbose: bool = True,
    sets: dict | None = None,
    visibility: bool = False,
) -> dict:
    """Measure the model on the synthetic sets (and ``photos``); with ``visibility``, also by how
    plainly the marks show (``by_visibility``), which draws every image again without its marks."""
    model = WearModel.load(model_path)
    threshold = model.threshold
    size = model.contract.input_size
    results: dict[str, dict] = {}
    if sets is None:
        sets = synthetic_sets(n, workers, size)
    for name, (images, labels, specs, about) in sets.items():
        started = time.perf_counter()
        scores = predict(model, images)
        results[name] = {
            **about,
            **summarise(labels, scores, threshold, specs),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if visibility:
            unmarked, _, _ = synth.render_all(specs, about["seed"], size, workers=workers, marks_drawn=False)
            seen = mark_visibility(images, unmarked)
            results[name]["by_visibility"] = by_visibility(labels, scores, seen, threshold, specs)
    if photos:
        images, labels, _ = load_photo_folder(photos, size)
        results["photos"] = {
            "about": "labelled photos from a folder",
            **summarise(labels, predict(model, images), threshold),
        }
    sample = sets["in_distribution"][0][:64]
    results["inference"] = {
        "about": "milliseconds per image through WearModel.score, one onnxruntime thread, 128 px input, "
        "median of 3 rounds over 64 images (shared machine: compare models measured in the same run)",
        "batch_1_ms": round(inference_ms(model, sample, 1), 2),
        "batch_8_ms": round(inference_ms(model, sample, 8), 2),
    }
    if verbose:
        print(report(results, threshold, model.version))
    return results


def report(results: dict, threshold: float, version: str) -> str:
    lines = [f"model {version}, threshold {threshold:.3f}"]
    for name, r in results.items():
        if name == "inference":
            lines.append(
                f"{name:>16}: {r['batch_1_ms']:.2f} ms per image (batch 1), {r['batch_8_ms']:.2f} ms (batch 8), "
                "1 thread"
            )
            continue
        lines.append(
            f"{name:>16}: n={r['n']} positives={r['positives']} accuracy={_f(r['accuracy'])} "
            f"roc_auc={_f(r['roc_auc'])} precision={_f(r['precision'])} recall={_f(r['recall'])} "
            f"fpr={_f(r['false_positive_rate'])}"
        )
        if r.get("recall_by_mark"):
            lines.append(
                "                  recall by mark: "
                + ", ".join(f"{k} {_f(v['recall'])}" for k, v in r["recall_by_mark"].items())
            )
            lines.append(
                "                  false positives: "
                + ", ".join(
                    f"{k} {_f(v['false_positive_rate'])}" for k, v in r["false_positive_rate_by_negative"].items()
                )
            )
            lines.append(
                "                  accuracy by texture: "
                + ", ".join(f"{k} {_f(v['accuracy'])}" for k, v in r["accuracy_by_texture"].items())
            )
        if r.get("by_visibility"):
            vis = r["by_visibility"]
            lines.append(
                "                  by mark visibility (peak luminance change; worn images in fifths, each against "
                "every clean image):"
            )
            for g in vis["groups"]:
                lines.append(
                    f"                    {g['from']:6.1f}-{g['to']:6.1f}  n={g['n']:<5} roc_auc={_f(g['roc_auc'])} "
                    f"recall={_f(g['recall'])}"
                )
            lines.append(
                "                  roc_auc against clean images without hard negatives: "
                f"{_f(vis['roc_auc_without_hard_negatives'])}"
            )
        if r.get("calibration"):
            cal = r["calibration"]
            lines.append(
                f"                  calibration: expected calibration error {_f(cal['expected_calibration_error'])}"
            )
            lines.append("                    probability      n   mean predicted   observed wear rate")
            for row in cal["bins"]:
                lines.append(
                    f"                    {row['from']:.1f}-{row['to']:.1f}   {row['n']:>7}   "
                    f"{_f(row.get('mean_probability')):>14}   {_f(row.get('observed_wear_rate')):>18}"
                )
    return "\n".join(lines)


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def write_metrics(model_path: str | Path, results: dict, command: str) -> None:
    """Store the measured numbers in the model's JSON contract (the ONNX file is untouched)."""
    json_path, _ = model_paths(model_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    data["metrics"] = {
        "measured_with": command,
        "measured_at": time.strftime("%Y-%m-%d", time.gmtime()),
        "threshold": data.get("threshold"),
        "note": "synthetic images only; numbers on real photos will differ",
        **results,
    }
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(args) -> int:
    models = args.model if isinstance(args.model, list) else [args.model]
    sizes = {WearModel.load(m).contract.input_size for m in models}
    if len(sizes) != 1:
        raise SystemExit("models with different input sizes cannot share the evaluation images; measure them apart")
    sets = synthetic_sets(args.n, args.workers, sizes.pop(), cache=args.cache)
    for path in models:
        results = evaluate(
            path, n=args.n, workers=args.workers, photos=args.photos, sets=sets, visibility=args.by_visibility
        )
        if args.write:
            cmd = f"python -m portal.vision.train evaluate --model {path}"
            if args.n != EVAL_SIZE:
                cmd += f" --n {args.n}"
            if args.photos:
                cmd += f" --photos {args.photos}"
            if args.by_visibility:
                cmd += " --by-visibility"
            write_metrics(path, results, cmd + " --write")
            print(f"metrics written to {model_paths(path)[0]}")
    return 0
