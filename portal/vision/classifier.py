"""The wear classifier at run time: an ONNX model and its JSON contract.

A model is two files side by side, ``<name>.onnx`` and ``<name>.json``. The
JSON is the contract: input name, size, channel order, layout and
normalisation, output names, labels, the decision threshold and the sha256 of
the ONNX file. ``WearModel.load`` checks the file against the sha256 and the
model's inputs and outputs against the contract, and raises ``ModelError`` with
a clear message when anything is missing, corrupt or does not match.

The score is advice for staff (where to look, what may be worn); it never
decides a return. ``get_model`` returns ``None`` for a missing or broken model,
so the portal keeps working and photos stay "not scored".

Inference runs on the CPU with one thread per session (``intra_op`` and
``inter_op`` both 1): the web and job workers share a small machine. There is
one onnxruntime session per process, created on first use and created again
in a forked child (the parent's session is never used across a fork).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from portal.domain.wear import DEFAULT_MODEL

log = logging.getLogger("portal.vision")

CONTRACT_SCHEMA = 1


class ModelError(Exception):
    """The model files are missing, corrupt, or do not match their contract."""


@dataclass(frozen=True)
class WearScore:
    probability: float  # 0..1, the model's probability that the photo shows wear marks
    label: str  # "wear" at or above the contract's threshold, else "no_wear"
    model_version: str
    score_map: list[list[float]]  # coarse map over the centre square of the photo, 0..1: where it looked


@dataclass(frozen=True)
class Contract:
    """What the JSON next to the ONNX file promises about it."""

    name: str
    version: str
    sha256: str
    input_name: str
    input_size: int
    channels: int
    channel_order: str
    layout: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    probability_output: str
    map_output: str
    map_size: int
    labels: tuple[str, str]
    threshold: float
    raw: dict

    @classmethod
    def from_json(cls, data: Any, where: str) -> Contract:
        def need(obj: Any, key: str, kind: type | tuple[type, ...], path: str) -> Any:
            if not isinstance(obj, dict) or key not in obj:
                raise ModelError(f"{where}: missing '{path}{key}'")
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ModelError(f"{where}: '{path}{key}' has the wrong type")
            return value

        inp = need(data, "input", dict, "")
        out = need(data, "outputs", dict, "")
        prob = need(out, "probability", dict, "outputs.")
        smap = need(out, "score_map", dict, "outputs.")
        mean = need(inp, "mean", list, "input.")
        std = need(inp, "std", list, "input.")
        labels = need(data, "labels", list, "")
        size = need(inp, "size", int, "input.")
        channels = need(inp, "channels", int, "input.")
        map_size = need(smap, "size", int, "outputs.score_map.")
        threshold = float(need(data, "threshold", (int, float), ""))
        sha = need(data, "sha256", str, "").lower()
        if channels != 3 or len(mean) != 3 or len(std) != 3:
            raise ModelError(f"{where}: expected 3 channels with 3 means and 3 standard deviations")
        if not all(isinstance(v, (int, float)) for v in mean + std) or any(v <= 0 for v in std):
            raise ModelError(f"{where}: 'input.mean'/'input.std' must be numbers, std positive")
        if size < 8 or map_size < 1:
            raise ModelError(f"{where}: implausible input or score map size")
        if len(labels) != 2 or not all(isinstance(v, str) for v in labels):
            raise ModelError(f"{where}: 'labels' must be two names, negative first")
        if not 0.0 <= threshold <= 1.0:
            raise ModelError(f"{where}: 'threshold' must be within 0..1")
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            raise ModelError(f"{where}: 'sha256' is not a hex SHA-256")
        order = need(inp, "channel_order", str, "input.")
        layout = need(inp, "layout", str, "input.")
        if order != "RGB" or layout != "NCHW":
            raise ModelError(f"{where}: only RGB channel order and NCHW layout are supported (got {order}, {layout})")
        return cls(
            name=need(data, "name", str, ""),
            version=need(data, "version", str, ""),
            sha256=sha,
            input_name=need(inp, "name", str, "input."),
            input_size=size,
            channels=channels,
            channel_order=order,
            layout=layout,
            mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            std=(float(std[0]), float(std[1]), float(std[2])),
            probability_output=need(prob, "name", str, "outputs.probability."),
            map_output=need(smap, "name", str, "outputs.score_map."),
            map_size=map_size,
            labels=(labels[0], labels[1]),
            threshold=threshold,
            raw=data,
        )


def model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(``<name>.json``, ``<name>.onnx``) for ``<name>``, ``<name>.json`` or ``<name>.onnx``."""
    p = Path(path)
    if p.suffix in (".json", ".onnx"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".json"), p.with_name(p.name + ".onnx")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _session_options():
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: warnings go nowhere useful in a web worker
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) of the photo that the model sees: its centre square."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """``size x size x 3`` uint8 RGB: the centre square of the photo, resized (antialiased bilinear)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    box = centre_square(*rgb.size)
    if box != (0, 0, *rgb.size):
        rgb = rgb.crop(box)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8)


class WearModel:
    """A loaded, checked wear classifier. Build with ``WearModel.load``."""

    def __init__(self, contract: Contract, onnx_path: Path):
        self.contract = contract
        self.onnx_path = onnx_path
        # (pixel / 255 - mean) / std as one multiply-add per value: pixel * scale + offset, per channel.
        std = np.array(contract.std, np.float64)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-np.array(contract.mean, np.float64) / std).astype(np.float32)
        self._session = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    # --- loading -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike) -> WearModel:
        """Load ``path`` (``models/wear-v1``, ``models/wear-v1.json`` or ``.onnx``) and check it."""
        json_path, onnx_path = model_paths(path)
        try:
            text = json_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelError(f"model contract {json_path.name} not found in {json_path.parent}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"model contract {json_path.name} unreadable: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model contract {json_path.name} is not valid JSON: {exc}") from None
        contract = Contract.from_json(data, json_path.name)
        if not onnx_path.is_file():
            raise ModelError(f"model file {onnx_path.name} not found in {onnx_path.parent}")
        actual = file_sha256(onnx_path)
        if actual != contract.sha256:
            raise ModelError(
                f"{onnx_path.name} does not match its contract: sha256 {actual[:12]}…, "
                f"expected {contract.sha256[:12]}… (corrupt, truncated or replaced)"
            )
        model = cls(contract, onnx_path)
        model._check_signature()
        return model

    def _new_session(self):
        try:
            return ort.InferenceSession(
                str(self.onnx_path), sess_options=_session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise ModelError(f"{self.onnx_path.name} cannot be loaded by onnxruntime: {exc}") from None

    def _check_signature(self) -> None:
        """The graph's inputs and outputs against the contract (a throwaway session: loading stays lazy)."""
        c = self.contract
        session = self._new_session()
        try:
            inputs = session.get_inputs()
            outputs = {o.name: o for o in session.get_outputs()}
        finally:
            del session
        name = self.onnx_path.name
        if len(inputs) != 1:
            raise ModelError(f"{name}: expected one input, found {len(inputs)}")
        inp = inputs[0]
        if inp.name != c.input_name:
            raise ModelError(f"{name}: input is named '{inp.name}', the contract says '{c.input_name}'")
        if inp.type != "tensor(float)":
            raise ModelError(f"{name}: input type {inp.type}, expected tensor(float)")
        _check_shape(name, "input", inp.shape, [c.channels, c.input_size, c.input_size])
        for wanted in (c.probability_output, c.map_output):
            if wanted not in outputs:
                raise ModelError(f"{name}: no output named '{wanted}' (outputs: {', '.join(sorted(outputs))})")
        _check_shape(name, c.probability_output, outputs[c.probability_output].shape, [1])
        _check_shape(name, c.map_output, outputs[c.map_output].shape, [1, c.map_size, c.map_size])

    # --- running -----------------------------------------------------------------------

    @property
    def version(self) -> str:
        """Name, contract version and the first 8 hex digits of the file's sha256: ``wear-v1@1.0.0+1a2b3c4d``."""
        c = self.contract
        return f"{c.name}@{c.version}+{c.sha256[:8]}"

    @property
    def threshold(self) -> float:
        return self.contract.threshold

    def session(self):
        """This process's onnxruntime session, created on first use and again after a fork."""
        pid = os.getpid()
        if pid != self._pid:  # a forked child: the parent's session and lock are not ours to use
            self._lock = threading.Lock()
            self._session = None
            self._pid = pid
        session = self._session
        if session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._new_session()
                session = self._session
        return session

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``N x 3 x S x S`` float32 as the contract asks: centre square, RGB, (x/255 - mean) / std."""
        size = self.contract.input_size
        batch = np.stack([prepare_image(img, size) for img in images]).astype(np.float32)
        batch *= self._scale  # N x S x S x 3: the channel is the last axis
        batch += self._offset
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def score(self, images: Sequence[Image.Image]) -> list[WearScore]:
        """Score a batch of photos in one run. Returns one ``WearScore`` per image, in order."""
        images = list(images)
        if not images:
            return []
        c = self.contract
        batch = self.preprocess(images)
        try:
            prob, smap = self.session().run([c.probability_output, c.map_output], {c.input_name: batch})
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{self.onnx_path.name}: inference failed: {exc}") from None
        prob = np.clip(np.asarray(prob, np.float64).reshape(len(images)), 0.0, 1.0)
        smap = np.clip(np.asarray(smap, np.float64).reshape(len(images), c.map_size, c.map_size), 0.0, 1.0)
        version = self.version
        return [
            WearScore(
                probability=float(p),
                label=c.labels[1] if p >= c.threshold else c.labels[0],
                model_version=version,
                score_map=m.tolist(),
            )
            for p, m in zip(prob, smap, strict=True)
        ]


def _check_shape(model: str, what: str, shape: list, expected: list[int]) -> None:
    """``shape`` is [batch, *expected]; the batch axis may be symbolic, fixed dims must match."""
    if len(shape) != len(expected) + 1:
        raise ModelError(f"{model}: {what} has shape {shape}, the contract says [N, {', '.join(map(str, expected))}]")
    for got, want in zip(shape[1:], expected, strict=True):
        if isinstance(got, int) and got != want:
            raise ModelError(
                f"{model}: {what} has shape {shape}, the contract says [N, {', '.join(map(str, expected))}]"
            )


# --- the heat overlay for staff ------------------------------------------------------------


def render_overlay(image: Image.Image, score_map: Sequence[Sequence[float]], opacity: float = 0.6) -> Image.Image:
    """The photo with the score map laid over it: where the model looked and what it found.

    The map covers the centre square of the photo (what the model saw); outside
    it the photo is dimmed. Low scores stay transparent, high ones turn from
    yellow to red.
    """
    rgb = image.convert("RGB")
    grid = np.asarray(score_map, dtype=np.float32)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError("score_map must be a non-empty 2-D grid")
    grid = np.nan_to_num(np.clip(grid, 0.0, 1.0))
    left, top, right, bottom = centre_square(*rgb.size)
    side = right - left
    heat = Image.fromarray((grid * 255).astype(np.uint8), "L").resize((side, side), Image.Resampling.BILINEAR)
    v = np.asarray(heat, np.float32) / 255.0
    colour = np.stack([np.full_like(v, 255.0), 230.0 * (1.0 - v), 40.0 * (1.0 - v)], axis=-1).astype(np.uint8)
    alpha = (np.clip((v - 0.1) / 0.9, 0.0, 1.0) * opacity * 255).astype(np.uint8)
    out = Image.eval(rgb, lambda px: px * 55 // 100) if (side, side) != rgb.size else rgb.copy()
    out.paste(rgb.crop((left, top, right, bottom)), (left, top))
    out.paste(Image.fromarray(colour, "RGB"), (left, top), Image.fromarray(alpha, "L"))
    return out


# --- one model per process, for the portal -----------------------------------------------

_cache: dict[str, tuple[tuple, WearModel | None]] = {}
_cache_lock = threading.Lock()


def _signature(json_path: Path, onnx_path: Path) -> tuple[tuple[int, int] | None, ...]:
    sig: list[tuple[int, int] | None] = []
    for p in (json_path, onnx_path):
        try:
            st = p.stat()
            sig.append((st.st_mtime_ns, st.st_size))
        except OSError:
            sig.append(None)
    return tuple(sig)


def get_model(models_dir: str | os.PathLike | None, name: str = DEFAULT_MODEL) -> WearModel | None:
    """The process's ``name`` model from ``models_dir``, or ``None`` when it is missing or broken.

    The result is cached; a broken model is reported with one error line and
    not retried until its files change.
    """
    if models_dir is None or not name or "/" in name or "\\" in name or name.startswith("."):
        sig: tuple[object, ...]
        key, sig = f"{models_dir}|{name}", ("invalid",)
        problem: str | None = "no models folder configured" if models_dir is None else f"invalid model name {name!r}"
    else:
        json_path, onnx_path = model_paths(Path(models_dir) / name)
        key, sig, problem = str(json_path), _signature(json_path, onnx_path), None
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        model: WearModel | None = None
        try:
            if problem or models_dir is None:
                raise ModelError(problem or "no models folder configured")
            model = WearModel.load(Path(models_dir) / name)
        except ModelError as exc:
            log.error("wear model unusable, photos stay unscored: %s", exc)
        _cache[key] = (sig, model)
        return model


def clear_cache() -> None:
    """Forget loaded models (tests; a process that swaps model files reloads on change anyway)."""
    with _cache_lock:
        _cache.clear()
