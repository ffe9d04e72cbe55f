"""Calibration of the network's scores: a temperature and an offset on the logit (Platt scaling).

P(fake) = sigmoid((logit − offset) / T). The temperature corrects over- or under-confidence; the
offset corrects a shift of the whole scale, such as the one self-blended fakes cause by making
training batches more often FAKE than the data.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["apply_calibration", "apply_temperature", "fit_calibration", "fit_temperature"]


def _logits(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(clipped) - np.log1p(-clipped)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """P(fake) recomputed as sigmoid(logit / temperature)."""
    return (1.0 / (1.0 + np.exp(-_logits(probs) / temperature))).astype(np.float32)


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """The temperature T in [0.05, 20] that minimises the log loss of sigmoid(logit / T)."""
    from scipy.optimize import minimize_scalar

    logits = _logits(probs)
    targets = np.asarray(labels, dtype=np.float64)

    def loss(log_t: float) -> float:
        z = logits / math.exp(log_t)
        # log(1 + e^z) − y·z, computed without overflow
        return float(np.mean(np.logaddexp(0.0, z) - targets * z))

    found = minimize_scalar(loss, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return round(math.exp(float(found.x)), 4)


def apply_calibration(probs: np.ndarray, temperature: float, offset: float) -> np.ndarray:
    """P(fake) recomputed as sigmoid((logit − offset) / temperature)."""
    return (1.0 / (1.0 + np.exp(-(_logits(probs) - offset) / temperature))).astype(np.float32)


def fit_calibration(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(temperature in [0.05, 20], offset in [−10, 10]) minimising the log loss of
    sigmoid((logit − offset) / temperature) on these labelled scores."""
    from scipy.optimize import minimize

    logits = _logits(probs)
    targets = np.asarray(labels, dtype=np.float64)

    def loss(params: np.ndarray) -> float:
        z = (logits - params[1]) / math.exp(params[0])
        return float(np.mean(np.logaddexp(0.0, z) - targets * z))

    found = minimize(
        loss,
        x0=np.array([0.0, 0.0]),
        method="L-BFGS-B",
        bounds=[(math.log(0.05), math.log(20.0)), (-10.0, 10.0)],
    )
    return round(math.exp(float(found.x[0])), 4), round(float(found.x[1]), 4)
