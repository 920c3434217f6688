"""Checks and readers shared by the model families (detection, segmentation, anomaly,
classification): step 5 of the flow, before any finding is made.

Everything here fails closed: an output the family cannot read raises ``ModelError``
(the part becomes NG with reason 'error'); it never becomes an empty findings list,
which would read as OK.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from inspector.errors import ModelError
from inspector.model_info import ModelInfo

FloatArray = npt.NDArray[np.float32]

# Probabilities may carry float rounding from the exporter's softmax/sigmoid.
_PROB_TOLERANCE = 1e-3


def static_dim(info: ModelInfo, output: int, axis: int) -> int | None:
    """A static output dimension, or None when the model leaves it dynamic or lacks it."""
    if output >= len(info.outputs):
        return None
    shape = info.outputs[output].shape
    if axis >= len(shape):
        return None
    dim = shape[axis]
    return dim if isinstance(dim, int) and dim > 0 else None


def first_output(name: str, outputs: list[FloatArray]) -> FloatArray:
    """The model's first output as float32; raise ModelError if it returned none."""
    if not outputs:
        raise ModelError(f"{name}: model returned no outputs")
    return np.asarray(outputs[0], np.float32)


def require_finite(name: str, what: str, array: FloatArray) -> None:
    """Raise ModelError if ``array`` holds NaN or inf (a broken engine or input)."""
    if not np.isfinite(array).all():
        raise ModelError(f"{name}: {what} contains NaN or inf")


def is_probability(array: FloatArray) -> bool:
    """True when every value lies within 0..1 (up to rounding)."""
    return bool(array.min() >= -_PROB_TOLERANCE and array.max() <= 1.0 + _PROB_TOLERANCE)


# Both work in one new buffer: fresh temporaries for every step of a [C, 512, 512] map
# cost more in page faults than the arithmetic itself.


def sigmoid(array: FloatArray) -> FloatArray:
    """Logistic function via tanh (no overflow warnings for large negative logits)."""
    out: FloatArray = np.multiply(array, 0.5, dtype=np.float32)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def softmax(array: FloatArray, axis: int) -> FloatArray:
    """Numerically stable softmax along ``axis``."""
    out: FloatArray = np.subtract(array, array.max(axis=axis, keepdims=True), dtype=np.float32)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


def to_probabilities(array: FloatArray, axis: int) -> FloatArray:
    """Class scores along ``axis`` as probabilities, converting logits when needed.

    One class (binary masks): values outside 0..1 are logits → sigmoid. Several classes:
    values outside 0..1, or sums along ``axis`` that are not 1, are logits → softmax.
    Ambiguity is resolved per call from the values; docs/model-families.md explains why
    that is safe enough for the layouts we accept.
    """
    if array.shape[axis] == 1:
        return array if is_probability(array) else sigmoid(array)
    if is_probability(array):
        sums = array.sum(axis=axis)
        if np.abs(sums - 1.0).max() <= _PROB_TOLERANCE * array.shape[axis]:
            return array
    return softmax(array, axis)
