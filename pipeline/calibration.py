"""Temperature scaling: one number that turns the network's scores into calibrated probabilities."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["apply_temperature", "fit_temperature"]


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
