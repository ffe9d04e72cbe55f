"""The verdict rule and its words: the band, the labels, and the sentences that explain a verdict."""

from __future__ import annotations

import pytest

from core.states import Verdict
from core.verdicts import (
    AGGREGATION_DESCRIPTIONS,
    LABELS,
    NOT_PROOF,
    decide,
    explanation,
    label,
    review_outcome,
)


@pytest.mark.parametrize(
    ("score", "band", "expected"),
    [
        (None, (0.3, 0.7), "no_face"),
        (float("nan"), None, "no_face"),
        (0.29, (0.3, 0.7), "real"),
        (0.3, (0.3, 0.7), "inconclusive"),
        (0.5, (0.3, 0.7), "inconclusive"),
        (0.6999, (0.3, 0.7), "inconclusive"),
        (0.7, (0.3, 0.7), "fake"),
        (0.55, None, "fake"),
        (0.45, None, "real"),
    ],
)
def test_decide_uses_the_band_around_the_threshold(
    score: float | None, band: tuple[float, float] | None, expected: str
) -> None:
    assert decide(score, 0.5, band) == expected


def test_every_verdict_has_words_for_people() -> None:
    assert set(LABELS) == set(Verdict)
    assert label("fake") == "Signs of manipulation"
    # What the model did, not a clearance: a fake the model misses reads the same.
    assert label("real") == "No signs of manipulation found by this model"
    assert label("inconclusive") == "Inconclusive"
    assert label("no_face") == "No face found"
    assert label(None) is None


def test_explanation_says_how_faces_made_the_score_and_where_it_lies() -> None:
    text = explanation(verdict="real", score=0.31, threshold=0.52, band=(0.4, 0.7), aggregation="mean")
    assert text is not None
    assert text.startswith(AGGREGATION_DESCRIPTIONS["mean"])
    assert "one face scoring above the threshold does not decide the verdict alone" in text
    assert "Its score, P(fake) 0.310, is below the inconclusive band 0.400–0.700 (threshold 0.520)." in text
    assert text.endswith(NOT_PROOF.format(media="video"))

    inside = explanation(
        verdict="inconclusive", score=0.5, threshold=0.52, band=(0.4, 0.7), aggregation="mean"
    )
    assert inside is not None and "inside the inconclusive band 0.400–0.700" in inside
    above = explanation(verdict="fake", score=0.9, threshold=0.52, band=(0.4, 0.7), aggregation="track_top")
    assert above is not None and "most suspicious person" in above and "above the inconclusive band" in above
    no_band = explanation(verdict="fake", score=0.6, threshold=0.5, aggregation="confident")
    assert no_band is not None and no_band.endswith("is at or above the threshold 0.500.")
    assert "not proof" not in no_band and "not proof" not in above


def test_a_real_verdict_says_it_is_not_proof_of_authenticity() -> None:
    for band in ((0.4, 0.7), None):
        text = explanation(verdict="real", score=0.2, threshold=0.5, band=band, aggregation="mean")
        assert text is not None and "This is not proof that the video is authentic" in text


def test_no_face_explains_what_it_means_and_what_to_try() -> None:
    text = explanation(verdict="no_face", score=None, threshold=0.5, band=(0.4, 0.7), aggregation="mean")
    assert text is not None
    assert "says nothing about whether the video was manipulated" in text and "Try a clip" in text


def test_no_explanation_before_a_verdict() -> None:
    assert explanation(verdict=None, score=None, threshold=None) is None


def test_an_image_is_explained_as_a_picture() -> None:
    from core.verdicts import explanation

    text = explanation(verdict="real", score=0.1, threshold=0.5, band=(0.3, 0.7), media_type="image")
    assert text is not None and "picture's score" in text and "video" not in text
    assert "not proof that the picture is authentic" in text
    no_face = explanation(verdict="no_face", score=None, threshold=0.5, media_type="image")
    assert no_face is not None and "picture" in no_face and "video" not in no_face


def test_a_review_agrees_or_overturns_only_when_both_took_a_side() -> None:
    assert review_outcome("fake", "fake") == review_outcome("real", "real") == "agreed"
    assert review_outcome("fake", "real") == review_outcome("real", "fake") == "overturned"
    for model_verdict, reviewer_label in (
        ("fake", "unsure"),
        ("inconclusive", "fake"),
        ("no_face", "real"),
        (None, "fake"),
    ):
        assert review_outcome(model_verdict, reviewer_label) == "undecided"
