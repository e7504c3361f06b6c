"""``python -m portal.vision.train {train,evaluate,quantise} ...``"""

from __future__ import annotations

import argparse
import os
import sys

from portal.vision.train import evaluate as ev


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m portal.vision.train", description="Train or evaluate the wear classifier."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_train = sub.add_parser("train", help="train from scratch on synthetic images and export ONNX + JSON")
    p_eval = sub.add_parser("evaluate", help="measure a model on the held-out synthetic sets")
    p_eval.add_argument(
        "--model",
        required=True,
        action="append",
        help="model path without extension, e.g. models/wear-v1 (repeat to measure several on the same images)",
    )
    p_eval.add_argument("--n", type=int, default=ev.EVAL_SIZE, help="images per evaluation set")
    p_eval.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="generator processes")
    p_eval.add_argument("--photos", help="also measure on a folder of labelled photos")
    p_eval.add_argument("--write", action="store_true", help="store the numbers in the model's JSON")
    p_eval.add_argument("--cache", help="keep the generated evaluation images in this .npz file and reuse them")
    p_eval.add_argument(
        "--by-visibility",
        action="store_true",
        help="also measure by how plainly the marks show (draws each image again without its marks)",
    )

    p_quant = sub.add_parser("quantise", help="int8 copy of a model, kept only if it loses little ROC AUC")
    p_quant.add_argument("--model", required=True, help="float model path without extension, e.g. models/wear-v2")
    p_quant.add_argument("--out", help="int8 model path without extension (default: <model>-int8)")
    p_quant.add_argument("--calibration-size", type=int, default=256, help="synthetic calibration images")
    p_quant.add_argument("--n", type=int, default=ev.EVAL_SIZE, help="images per evaluation set")
    p_quant.add_argument("--max-loss", type=float, default=0.005, help="largest ROC AUC loss accepted per set")
    p_quant.add_argument("--replace", action="store_true", help="put a kept int8 model in place of the float one")
    p_quant.add_argument("--cache", help="keep the generated evaluation images in this .npz file and reuse them")
    p_quant.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="generator processes")

    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "train":
        from portal.vision.train import train as tr  # noqa: PLC0415 - needs torch (the train extra)

        tr.add_arguments(p_train)
    args = parser.parse_args(argv)
    if args.command == "train":
        args.argv = argv[1:]
        return tr.main(args)
    if args.command == "quantise":
        from portal.vision.train import quantise  # noqa: PLC0415 - needs onnx (the train extra)

        return quantise.main(args)
    return ev.main(args)


if __name__ == "__main__":
    sys.exit(main())
