# Copyright 2026 The cast-transformers authors. Licensed under the Apache License, Version 2.0.
"""The part-whole generator (`processing.synthetic.part_whole`): determinism, consistent ground truth, classes that color does
not give away, the `datasets` view and the imagefolder round trip."""

import datasets
import numpy as np
import pytest

from processing.synthetic.part_whole import (
    PART_NAMES,
    PART_WHOLE_CLASSES,
    PARTS_OF_CLASS,
    load_part_whole_imagefolder,
    make_part_whole_dataset,
    render_part_whole_sample,
    write_part_whole_imagefolder,
)

SIZE = 48  # small and fast; every part is still drawn


def _arrays(sample):
    return sample.image, sample.object_mask, sample.part_mask


def test_render_is_deterministic_and_depends_on_the_seed():
    first, again = render_part_whole_sample(5, SIZE, seed=3), render_part_whole_sample(5, SIZE, seed=3)
    other_seed = render_part_whole_sample(5, SIZE, seed=4)

    for array, same in zip(_arrays(first), _arrays(again)):
        np.testing.assert_array_equal(array, same)
    assert first.label == again.label == other_seed.label == 5 % len(PART_WHOLE_CLASSES)
    assert not np.array_equal(first.image, other_seed.image)


def test_dataset_sample_does_not_depend_on_the_dataset_size():
    small, large = make_part_whole_dataset(2, SIZE, seed=1), make_part_whole_dataset(5, SIZE, seed=1)
    alone = render_part_whole_sample(1, SIZE, seed=1)

    for column, array in zip(("image", "object_mask", "part_mask"), _arrays(alone)):
        np.testing.assert_array_equal(np.asarray(small[1][column]), array)
        np.testing.assert_array_equal(np.asarray(large[1][column]), array)
    assert large["label"] == [0, 1, 2, 3, 0]  # balanced: class = index % 4


def test_masks_are_consistent_parts_inside_objects():
    for index in range(40):
        sample = render_part_whole_sample(index, SIZE, seed=0)
        image, object_mask, part_mask = _arrays(sample)

        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert object_mask.shape == part_mask.shape == (SIZE, SIZE)
        # the object is exactly the union of its parts, and carries its class
        np.testing.assert_array_equal(object_mask > 0, part_mask > 0)
        assert set(np.unique(object_mask)) == {0, sample.label + 1}
        # parts belong to the object's class; most of them are visible (small ones may hide behind others)
        parts = set(np.unique(part_mask)) - {0}
        assert parts <= set(PARTS_OF_CLASS[sample.label]), (index, parts)
        assert len(parts) >= len(PARTS_OF_CLASS[sample.label]) - 1, (index, parts)
        assert 0.04 < (object_mask > 0).mean() < 0.8, index


def test_part_names_belong_to_exactly_one_class():
    owned = [part for parts in PARTS_OF_CLASS.values() for part in parts]

    assert sorted(owned) == list(range(1, len(PART_NAMES)))
    assert PART_NAMES[0] == "background"
    assert all(len(PARTS_OF_CLASS[label]) >= 3 for label in range(len(PART_WHOLE_CLASSES)))


def test_global_color_does_not_give_the_class_away():
    """A nearest-class-mean classifier on the mean and spread of each image's colors and of its object's colors
    stays near chance (1/4), since every part draws its color from one distribution shared by all classes."""
    train, test = [render_part_whole_sample(i, 32, seed=0) for i in range(240)], [
        render_part_whole_sample(i, 32, seed=1) for i in range(120)
    ]

    def color_features(sample):
        pixels = sample.image.reshape(-1, 3).astype(np.float64)
        on_object = pixels[sample.object_mask.reshape(-1) > 0]
        return np.concatenate([pixels.mean(0), pixels.std(0), on_object.mean(0), on_object.std(0)])

    features = np.array([color_features(sample) for sample in train])
    labels = np.array([sample.label for sample in train])
    mean, std = features.mean(0), features.std(0) + 1e-9
    centroids = np.array([((features[labels == c] - mean) / std).mean(0) for c in range(len(PART_WHOLE_CLASSES))])
    test_features = (np.array([color_features(sample) for sample in test]) - mean) / std
    predicted = np.argmin(((test_features[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (predicted == np.array([sample.label for sample in test])).mean()

    assert accuracy < 0.4


def test_dataset_features():
    dataset = make_part_whole_dataset(4, SIZE, seed=0)

    assert dataset.column_names == ["image", "label", "object_mask", "part_mask"]
    assert dataset.features["label"].names == list(PART_WHOLE_CLASSES)
    example = dataset[2]
    assert example["image"].mode == "RGB" and example["part_mask"].mode == "L" and example["object_mask"].mode == "L"
    assert example["image"].size == (SIZE, SIZE)


def test_imagefolder_round_trip(tmp_path):
    dataset = make_part_whole_dataset(6, SIZE, seed=2)

    split_folder = write_part_whole_imagefolder(dataset, tmp_path, split="validation")
    loaded = load_part_whole_imagefolder(tmp_path, split="validation")
    plain = datasets.load_dataset("imagefolder", data_dir=str(split_folder), split="train")

    assert split_folder == tmp_path / "validation"
    assert loaded.features == dataset.features
    assert len(loaded) == len(plain) == 6
    for index in range(6):
        for column in ("image", "object_mask", "part_mask"):
            np.testing.assert_array_equal(np.asarray(loaded[index][column]), np.asarray(dataset[index][column]))
        assert loaded[index]["label"] == dataset[index]["label"]
    # the masks load as images with the plain imagefolder builder too
    assert set(plain.column_names) >= {"image", "object_mask", "part_mask", "label"}


def test_imagefolder_rewritten_with_fewer_images_keeps_no_stale_files(tmp_path):
    write_part_whole_imagefolder(make_part_whole_dataset(5, SIZE, seed=0), tmp_path)
    smaller = make_part_whole_dataset(2, SIZE, seed=1)
    split_folder = write_part_whole_imagefolder(smaller, tmp_path)

    for sub_folder in ("images", "object_masks", "part_masks"):
        assert sorted(path.name for path in (split_folder / sub_folder).iterdir()) == ["00000.png", "00001.png"]
    plain = datasets.load_dataset("imagefolder", data_dir=str(split_folder), split="train")
    assert len(plain) == 2
    np.testing.assert_array_equal(np.asarray(plain[1]["image"]), np.asarray(smaller[1]["image"]))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: render_part_whole_sample(0, 16), ValueError, "`image_size` must be >= 32"),
        (lambda: render_part_whole_sample(0, 64.0), TypeError, "`image_size` must be an int, got float"),
        (lambda: render_part_whole_sample(-1), ValueError, "`index` must be >= 0, got -1"),
        (lambda: render_part_whole_sample(0, seed="0"), TypeError, "`seed` must be an int, got str"),
        (lambda: make_part_whole_dataset(0), ValueError, "`num_samples` must be >= 1, got 0"),
        (lambda: load_part_whole_imagefolder("/nonexistent"), ValueError, "must hold `train/metadata.jsonl`"),
    ],
    ids=["small", "float-size", "index", "seed-type", "empty", "missing-folder"],
)
def test_part_whole_rejects_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_write_imagefolder_rejects_other_datasets(tmp_path):
    other = datasets.Dataset.from_dict({"image": [np.zeros((4, 4, 3), np.uint8)]})

    with pytest.raises(ValueError, match=r"missing \['label', 'object_mask', 'part_mask'\]"):
        write_part_whole_imagefolder(other, tmp_path)
