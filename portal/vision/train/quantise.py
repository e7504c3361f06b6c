"""int8 quantisation of a trained wear model, kept only when it loses at most ``--max-loss`` ROC AUC.

``python -m portal.vision.train quantise --model models/wear-v2`` writes
``models/wear-v2-int8.onnx`` and ``.json``: onnxruntime's static quantisation in
QDQ form (per-channel int8 weights, uint8 activations) of the convolutions,
calibrated on synthetic images of the training textures and marks (their own
seed, never the evaluation sets); pooling and the sigmoid stay in float. Both
models are then measured on the same evaluation images; when the int8 model
loses more than ``--max-loss`` ROC AUC on either set it is deleted and the
command fails. With ``--replace`` a model that passes takes the place of the
float one (same name; the contract records both measurements).

Needs the ``train`` extra (``onnx``, used by onnxruntime's quantisation tools).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from portal.vision.classifier import WearModel, file_sha256, model_paths
from portal.vision.train import evaluate as ev
from portal.vision.train import synth

CALIBRATION_SEED = 6001
MAX_AUC_LOSS = 0.005


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over preprocessed batches."""

    def __init__(self, model: WearModel, images: np.ndarray, batch: int = 16):
        self._batches = [
            {model.contract.input_name: model.preprocess([Image.fromarray(im) for im in images[i : i + batch]])}
            for i in range(0, len(images), batch)
        ]
        self._it = iter(self._batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._batches)


def quantise(model_path: str | Path, out_path: str | Path, calibration_size: int, workers: int) -> dict:
    from onnxruntime.quantization import (  # noqa: PLC0415 - the train extra
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    model = WearModel.load(model_path)
    size = model.contract.input_size
    images, _, _ = synth.generate(
        calibration_size,
        CALIBRATION_SEED,
        textures=synth.TRAIN_TEXTURES,
        marks=synth.TRAIN_MARKS,
        size=size,
        mask_size=size // 8,
        workers=workers,
    )
    json_out, onnx_out = model_paths(out_path)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model.onnx_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(onnx_out),
            _Reader(model, images),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    contract = dict(model.contract.raw)
    contract.pop("metrics", None)
    contract.update(
        {
            "name": Path(out_path).name,
            "file": onnx_out.name,
            "file_size_bytes": onnx_out.stat().st_size,
            "sha256": file_sha256(onnx_out),
        }
    )
    contract["quantisation"] = {
        "from": f"{model.contract.name} {model.version}",
        "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, "
        "convolutions only (pooling and sigmoid in float), MinMax calibration",
        "calibration": f"{calibration_size} synthetic images, seed {CALIBRATION_SEED}, training textures and marks",
        "threshold": "the float model's, unchanged",
    }
    json_out.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")
    return contract


def main(args) -> int:
    source = Path(args.model)
    out = Path(args.out) if args.out else source.with_name(source.name + "-int8")
    started = time.perf_counter()
    print(f"quantising {source} to int8 ({args.calibration_size} calibration images)...", flush=True)
    quantise(source, out, args.calibration_size, args.workers)
    size = WearModel.load(source).contract.input_size
    sets = ev.synthetic_sets(args.n, args.workers, size, cache=args.cache)
    float_results = ev.evaluate(source, n=args.n, workers=args.workers, sets=sets)
    int8_results = ev.evaluate(out, n=args.n, workers=args.workers, sets=sets)
    loss = {
        name: round(float(float_results[name]["roc_auc"]) - float(int8_results[name]["roc_auc"]), 4) for name in sets
    }
    passed = all(v <= args.max_loss for v in loss.values())
    json_out, onnx_out = model_paths(out)
    contract = json.loads(json_out.read_text(encoding="utf-8"))
    contract["quantisation"].update(
        {
            "roc_auc_float": {name: float_results[name]["roc_auc"] for name in sets},
            "roc_auc_int8": {name: int8_results[name]["roc_auc"] for name in sets},
            "roc_auc_loss": loss,
            "max_loss": args.max_loss,
            "inference_ms_float": float_results["inference"],
            "inference_ms_int8": int8_results["inference"],
            "measured_with": f"python -m portal.vision.train quantise --model {args.model}"
            + (f" --n {args.n}" if args.n != ev.EVAL_SIZE else ""),
        }
    )
    print(
        "ROC AUC loss "
        + ", ".join(f"{k} {v:+.4f}" for k, v in loss.items())
        + f" (at most {args.max_loss}); {time.perf_counter() - started:.0f}s",
        flush=True,
    )
    if not passed:
        json_out.unlink(missing_ok=True)
        onnx_out.unlink(missing_ok=True)
        print("int8 model not kept: it loses too much ROC AUC", flush=True)
        return 1
    json_out.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")
    if args.replace:
        src_json, src_onnx = model_paths(source)
        float_contract = json.loads(src_json.read_text(encoding="utf-8"))
        contract["name"] = float_contract["name"]
        contract["file"] = src_onnx.name
        os.replace(onnx_out, src_onnx)
        src_json.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")
        json_out.unlink(missing_ok=True)
        print(f"int8 model kept in place of {src_onnx}", flush=True)
    else:
        print(f"int8 model kept: {onnx_out}", flush=True)
    return 0
