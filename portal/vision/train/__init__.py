"""Training pipeline of the wear classifier: synthetic data, the network, training, evaluation.

``synth`` and ``evaluate`` need only numpy, Pillow and onnxruntime; ``model`` and
``train`` need the ``train`` extra (PyTorch, onnx). Nothing outside this package
imports torch.

    python -m portal.vision.train train --out models/wear-v1
    python -m portal.vision.train evaluate --model models/wear-v1 --write
"""
