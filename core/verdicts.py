"""Verdicts for people: the decision rule, the words shown for each verdict and why it was reached.

Shared by the CLI summary, the HTML report, the API's job answer and the batch exports, so a
verdict reads the same wherever a person meets it. Plain Python: no numpy, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.states import Verdict

__all__ = [
    "AGGREGATION_DESCRIPTIONS",
    "FACES_TOO_SMALL",
    "FACES_TOO_SMALL_LABEL",
    "LABELS",
    "NOT_PROOF",
    "decide",
    "explanation",
    "faces_too_small_message",
    "label",
    "review_outcome",
]

# ``real`` says what the model did, not what the video is: a fake the model misses gets this
# verdict too, and "no manipulation detected" read as a clearance.
LABELS: dict[str, str] = {
    Verdict.FAKE: "Signs of manipulation",
    Verdict.REAL: "No signs of manipulation found by this model",
    Verdict.INCONCLUSIVE: "Inconclusive",
    Verdict.NO_FACE: "No face found",
}

# Said beside every ``real`` verdict: the model's silence is no evidence of authenticity.
NOT_PROOF = (
    "This is not proof that the {media} is authentic: the model can miss manipulation it was not "
    "trained on, so check it by other means before relying on it."
)

# How each aggregation turns face scores into the video's score, said for a reader of a verdict.
AGGREGATION_DESCRIPTIONS: dict[str, str] = {
    "mean": (
        "The video's score is the average, over every sampled frame, of the most suspicious face in "
        "that frame, so one face scoring above the threshold does not decide the verdict alone."
    ),
    "confident": (
        "The video's score averages only the confidently fake frames when many frames are, only the "
        "confidently real ones when nearly all are, and every sampled frame otherwise (each frame "
        "scored by its most suspicious face), so a single face above the threshold does not decide "
        "the verdict alone."
    ),
    "track_top": (
        "The video's score is that of the most suspicious person followed across frames (the mean of "
        "the more suspicious half of their face scores), so a single face above the threshold does "
        "not decide the verdict alone."
    ),
}


def label(verdict: str | None) -> str | None:
    """The words shown for ``verdict``; None when there is none yet."""
    if verdict is None:
        return None
    return LABELS.get(verdict, verdict)


def _band(band: Sequence[float] | None) -> tuple[float, float] | None:
    if band is None:
        return None
    low, high = (float(v) for v in band)
    return low, high


def decide(score: float | None, threshold: float, band: Sequence[float] | None = None) -> Verdict:
    """``no_face`` without a score; ``inconclusive`` inside ``band`` = [low, high); else ``fake`` at
    or above ``threshold`` and ``real`` below it."""
    if score is None or not math.isfinite(score):
        return Verdict.NO_FACE
    limits = _band(band)
    if limits is not None and limits[0] <= score < limits[1]:
        return Verdict.INCONCLUSIVE
    return Verdict.FAKE if score >= threshold else Verdict.REAL


def explanation(
    *,
    verdict: str | None,
    score: float | None,
    threshold: float | None,
    band: Sequence[float] | None = None,
    aggregation: str | None = None,
    media_type: str = "video",
) -> str | None:
    """One or two sentences on how the verdict was reached; None while there is no verdict."""
    if verdict is None:
        return None
    image = media_type == "image"
    if verdict == Verdict.NO_FACE and image:
        return (
            "No face was found in the picture, so nothing could be scored: this says nothing about "
            "whether it was manipulated. Try a picture where a face is visible, frontal and at least "
            "about 60 pixels tall."
        )
    if verdict == Verdict.NO_FACE:
        return (
            "No face was found in the sampled frames, so nothing could be scored: this says nothing "
            "about whether the video was manipulated. Try a clip where a face is visible, frontal and "
            "at least about 60 pixels tall, or sample more frames per second."
        )
    how = (
        "The picture's score is that of its most suspicious face."
        if image
        else AGGREGATION_DESCRIPTIONS.get(aggregation or "", "")
    )
    if score is None or threshold is None:
        return how or None
    limits = _band(band)
    if verdict == Verdict.INCONCLUSIVE and limits is not None:
        where = (
            f"Its score, P(fake) {score:.3f}, lies inside the inconclusive band {limits[0]:.3f}–"
            f"{limits[1]:.3f} around the threshold {threshold:.3f}, where the model's calls were "
            "not reliable enough on validation data to say either way."
        )
    elif limits is not None and score >= limits[1]:
        where = (
            f"Its score, P(fake) {score:.3f}, is above the inconclusive band {limits[0]:.3f}–"
            f"{limits[1]:.3f} (threshold {threshold:.3f})."
        )
    elif limits is not None:
        where = (
            f"Its score, P(fake) {score:.3f}, is below the inconclusive band {limits[0]:.3f}–"
            f"{limits[1]:.3f} (threshold {threshold:.3f})."
        )
    else:
        side = "at or above" if score >= threshold else "below"
        where = f"Its score, P(fake) {score:.3f}, is {side} the threshold {threshold:.3f}."
    if verdict == Verdict.REAL:
        where += " " + NOT_PROOF.format(media="picture" if image else "video")
    return f"{how} {where}".strip()


# A no_face verdict whose analysis saw faces, all smaller than the model can score: said as such,
# never as "no face found" (a crowd filmed from afar is not an empty room).
FACES_TOO_SMALL = "faces_too_small"
FACES_TOO_SMALL_LABEL = "Faces too small to score"


def faces_too_small_message(
    *, faces_seen: int, face_size_px: float, min_face_size_px: float, media_type: str = "video"
) -> str:
    """Why nothing was scored when every face seen was under the model's minimum size."""
    where = "the picture" if media_type == "image" else "the sampled frames"
    faces = "1 face was" if faces_seen == 1 else f"{faces_seen} faces were"
    return (
        f"{faces} seen in {where}, about {face_size_px:.0f} pixels in size, smaller than the "
        f"{min_face_size_px:.0f} pixels this model needs to score a face, so nothing was scored: this "
        "says nothing about whether it was manipulated. Send a larger or sharper copy, or one where "
        "the faces are closer to the camera."
    )


def review_outcome(model_verdict: str | None, reviewer_label: str) -> str:
    """What a reviewer's label says of the model's verdict: ``agreed`` or ``overturned`` when both
    took a side (fake or real), ``undecided`` otherwise (the reviewer was unsure, or the model
    said inconclusive or found no face), which counts toward neither."""
    sides = (Verdict.FAKE.value, Verdict.REAL.value)
    if model_verdict not in sides or reviewer_label not in sides:
        return "undecided"
    return "agreed" if model_verdict == reviewer_label else "overturned"
