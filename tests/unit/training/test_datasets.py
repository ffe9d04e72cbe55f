"""Metadata reading, identity groups, the leak-free split and the crop cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.utils.training import make_crop_folder
from training.datasets import (
    DatasetError,
    group_of,
    identity_split,
    load_crop_folder,
    read_entries,
    split_indices,
)


def test_groups_follow_the_original_for_fakes_and_the_name_for_reals() -> None:
    assert group_of("abc.jpg", 1, "xyz.mp4") == "xyz"
    assert group_of("xyz.jpg", 0, None) == "xyz"
    assert group_of("lonely.jpg", 1, None) == "lonely"  # a fake without an original is its own group


def test_split_never_puts_one_group_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    groups = [f"g{int(i)}" for i in rng.integers(0, 300, size=3000)]
    train, val = identity_split(groups, val_fraction=0.2, seed=0)
    assert len(train) + len(val) == len(groups)
    assert not ({groups[i] for i in train} & {groups[i] for i in val})
    held_groups = len({groups[i] for i in val}) / len(set(groups))
    assert 0.12 < held_groups < 0.28


def test_split_depends_on_names_not_order_or_subset() -> None:
    groups = [f"person{i % 50}" for i in range(500)]
    _, val = identity_split(groups, val_fraction=0.3, seed=4)
    held = {groups[i] for i in val}
    shuffled = list(reversed(groups[:200]))
    _, val_shuffled = identity_split(shuffled, val_fraction=0.3, seed=4)
    assert {shuffled[i] for i in val_shuffled} == held & set(shuffled)
    _, other_seed = identity_split(groups, val_fraction=0.3, seed=5)
    assert {groups[i] for i in other_seed} != held


def test_split_indices_all_train_val() -> None:
    groups = [f"g{i}" for i in range(40)]
    assert list(split_indices(groups, "all")) == list(range(40))
    train, val = split_indices(groups, "train"), split_indices(groups, "val")
    assert sorted([*train, *val]) == list(range(40))
    with pytest.raises(ValueError, match="unknown split"):
        split_indices(groups, "test")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_read_entries_from_csv_and_json(tmp_path: Path, fmt: str) -> None:
    root = make_crop_folder(tmp_path / "crops", identities=3, fakes_per_identity=2, fmt=fmt)
    entries = read_entries(root)
    assert len(entries) == 9
    fakes = [e for e in entries if e.label == 1]
    assert len(fakes) == 6 and {e.group for e in fakes} == {"real000", "real001", "real002"}
    assert {e.group for e in entries if e.label == 0} == {"real000", "real001", "real002"}


def test_bad_metadata_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_entries(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no metadata\.csv or metadata\.json"):
        read_entries(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.json").write_text(json.dumps({"a.jpg": {"label": "MAYBE"}}))
    with pytest.raises(DatasetError, match="FAKE or REAL") as caught:
        read_entries(bad)
    assert caught.value.code == "invalid_dataset"
    (bad / "metadata.json").write_text(json.dumps({"../a.jpg": {"label": "REAL"}}))
    with pytest.raises(DatasetError, match="bad file name"):
        read_entries(bad)


def test_missing_image_is_reported(tmp_path: Path) -> None:
    root = make_crop_folder(tmp_path / "crops", identities=2)
    (root / "faces" / "real001.jpg").unlink()
    with pytest.raises(DatasetError, match=r"real001\.jpg"):
        load_crop_folder(root, size=32, cache_dir=tmp_path / "cache")


def test_crop_folder_is_resized_once_and_cached(tmp_path: Path) -> None:
    root = make_crop_folder(tmp_path / "crops", identities=4, size=48)
    cache = tmp_path / "cache"
    first = load_crop_folder(root, size=32, cache_dir=cache)
    assert first.images.shape == (12, 32, 32, 3) and first.images.dtype == np.uint8
    assert first.labels.tolist().count(1) == 8
    assert len(list(cache.glob("*.npy"))) == 1
    # The cache answers even once the images are gone: the crops are never decoded twice.
    for image in (root / "faces").iterdir():
        image.write_bytes(image.read_bytes())  # same sizes, same manifest
    second = load_crop_folder(root, size=32, cache_dir=cache)
    assert np.array_equal(first.images, second.images)
    assert first.manifest_sha256 == second.manifest_sha256
    subset = first.subset([0, 2])
    assert subset.items == [first.items[0], first.items[2]] and len(subset) == 2
