"""The shipped model's version, threshold and inconclusive band that README.md and the model card
quote are the ones in the checkpoint's own metadata, so a new checkpoint cannot leave the docs
describing the old one."""

from __future__ import annotations

import re

import pytest

from pipeline.checkpoint import DEFAULT_MODEL_PATH, ModelConfig, read_model_config
from tests.utils.platform import REPO_ROOT

# Where the model card stops describing the shipped model and keeps an older one for comparison.
_CARD_HISTORY_MARKER = "The rest of this card describes"


@pytest.fixture(scope="module")
def shipped() -> ModelConfig:
    config = read_model_config(DEFAULT_MODEL_PATH)  # the header only: no torch, no weights
    assert config.trained and config.inconclusive_band is not None
    return config


def _flat(path: str) -> str:
    return " ".join((REPO_ROOT / path).read_text(encoding="utf-8").split())


def _digits(value: float, places: int) -> str:
    return f"{value:.{places}f}"


def test_readme_sample_output_quotes_the_shipped_threshold_and_band(shipped: ModelConfig) -> None:
    assert shipped.inconclusive_band is not None
    low, high = shipped.inconclusive_band
    text = _flat("README.md")

    # As `analyze` prints them: three decimals.
    quoted = re.findall(r"threshold (\d\.\d+), inconclusive (\d\.\d+)–(\d\.\d+)", text)
    assert quoted, "README.md must show analyze's summary line with the threshold and band"
    assert set(quoted) == {(_digits(shipped.threshold, 3), _digits(low, 3), _digits(high, 3))}
    # Every other threshold the README states is the shipped one too.
    for stated in re.findall(r"threshold (\d\.\d+)", text):
        assert stated == _digits(shipped.threshold, 3)
    assert f"model {shipped.name} {shipped.version}," in text


def test_readme_verdict_table_quotes_the_shipped_band(shipped: ModelConfig) -> None:
    assert shipped.inconclusive_band is not None
    low, high = shipped.inconclusive_band
    quoted = re.findall(r"the shipped model: (\d\.\d+)–(\d\.\d+)", _flat("README.md"))

    assert quoted == [(_digits(low, 3), _digits(high, 3))]


def test_readme_names_the_shipped_version(shipped: ModelConfig) -> None:
    quoted = re.findall(
        r"`models/deepfakestream\.safetensors`, EfficientNet-Lite0 (\S+):", _flat("README.md")
    )

    assert quoted == [shipped.version]


def test_model_card_describes_the_shipped_checkpoint(shipped: ModelConfig) -> None:
    assert shipped.inconclusive_band is not None
    low, high = shipped.inconclusive_band
    card = _flat("models/README.md")
    assert _CARD_HISTORY_MARKER in card
    current = card.split(_CARD_HISTORY_MARKER, 1)[0]

    headline = re.search(r"workers: \*\*([^*]+)\*\*", current)
    assert headline is not None and headline.group(1) == shipped.version
    # As evaluate and the card print them: four decimals.
    thresholds = set(re.findall(r"threshold\s+(\d\.\d+)", current))
    bands = set(re.findall(r"band\s+\[(\d\.\d+), (\d\.\d+)\)", current))
    assert thresholds == {_digits(shipped.threshold, 4)}
    assert bands == {(_digits(low, 4), _digits(high, 4))}
