"""The one colour scale of every Grad-CAM heatmap: the colours the worker blends over a face crop,
and the legend the page and the report draw from the same numbers.

Heat is absolute, not relative to each crop: a spot's heat is the face's P(fake) times the share of
that face's Grad-CAM evidence there (1 at its own peak), so a face the model scored 0.04 stays
nearly clear while one it scored 0.99 glows red where its evidence lies. Plain Python: no numpy.
"""

from __future__ import annotations

from itertools import pairwise

__all__ = [
    "HEATMAP_ALPHA",
    "HEATMAP_COLOURS",
    "LEGEND_BACKGROUND",
    "LEGEND_TEXT",
    "colour_at",
    "legend_gradient",
    "legend_stops",
    "shown_colour",
]

# The colour's weight in the overlay at heat 1; at heat h it is h times this, so cold spots leave
# the face visible.
HEATMAP_ALPHA = 0.45

# (heat, RGB) knots of the jet colour map, linear in between: dark blue, blue, cyan, yellow, red,
# dark red.
HEATMAP_COLOURS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (0, 0, 128)),
    (0.125, (0, 0, 255)),
    (0.375, (0, 255, 255)),
    (0.625, (255, 255, 0)),
    (0.875, (255, 0, 0)),
    (1.0, (128, 0, 0)),
)

# The legend shows each heat as it would look over a mid-grey face.
LEGEND_BACKGROUND = (128, 128, 128)

LEGEND_TEXT = (
    "One colour scale for every face: the colour is the face's P(fake) times the share of its "
    "Grad-CAM evidence at that spot, so a face the model scored low stays nearly clear."
)


def colour_at(heat: float) -> tuple[float, float, float]:
    """The colour map's RGB (0–255) at ``heat`` in [0, 1], before blending."""
    h = min(max(float(heat), 0.0), 1.0)
    for (low, low_rgb), (high, high_rgb) in pairwise(HEATMAP_COLOURS):
        if h <= high:
            share = (h - low) / (high - low)
            return (
                low_rgb[0] + (high_rgb[0] - low_rgb[0]) * share,
                low_rgb[1] + (high_rgb[1] - low_rgb[1]) * share,
                low_rgb[2] + (high_rgb[2] - low_rgb[2]) * share,
            )
    red, green, blue = HEATMAP_COLOURS[-1][1]
    return float(red), float(green), float(blue)


def shown_colour(heat: float, background: tuple[int, int, int] = LEGEND_BACKGROUND) -> tuple[int, int, int]:
    """The overlay's pixel at ``heat`` over a pixel of colour ``background``, as the worker draws it."""
    h = min(max(float(heat), 0.0), 1.0)
    weight = HEATMAP_ALPHA * h
    colour = colour_at(h)
    red, green, blue = (
        min(max(int(base * (1.0 - weight) + tint * weight + 0.5), 0), 255)
        for base, tint in zip(background, colour, strict=True)
    )
    return red, green, blue


def legend_stops(count: int = 11) -> list[tuple[float, tuple[int, int, int]]]:
    """``count`` evenly spaced heats from 0 to 1 with the colour each shows over the legend's grey."""
    return [(k / (count - 1), shown_colour(k / (count - 1))) for k in range(count)]


def legend_gradient() -> str:
    """The legend's bar as a CSS ``linear-gradient`` from heat 0 (left) to 1 (right)."""
    stops = ", ".join(f"rgb({r}, {g}, {b}) {heat * 100:g}%" for heat, (r, g, b) in legend_stops())
    return f"linear-gradient(to right, {stops})"
