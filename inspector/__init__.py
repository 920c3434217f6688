"""inspector: a production-line visual inspection daemon.

The flow, and the package that holds each step::

    trigger ─▶ camera ─▶ preprocess ─▶ infer ─▶ postprocess ─▶ decide ─▶ publish
    (plc/)     (camera/)  (preprocess/) (backends/) (models/)   (decide.py) (plc/, metrics.py)

``app.py`` wires the steps from config; ``pipeline.py`` runs them per part.
Importing this package never imports TensorRT, CUDA or torch.
"""

__version__ = "0.1.0"
