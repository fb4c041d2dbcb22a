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
    RECOGNITION_CLASSES,
    SOUP_LABEL,
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


# ---------------------------------------------------------------------------------------------------------------
# Recognition mode
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "index, seed, size, digest", [(0, 0, 48, "ebdb22a1785e8420"), (5, 3, 64, "31c47ccc2ac63847"), (7, 1000003, 96, "5cb4d0777b0d1ed6")]
)
def test_classic_mode_is_bit_identical_to_the_first_version(index, seed, size, digest):
    """Digests recorded with the generator before the recognition mode was added."""
    import hashlib

    sample = render_part_whole_sample(index, size, seed)
    data = sample.image.tobytes() + sample.part_mask.tobytes() + sample.object_mask.tobytes()

    assert hashlib.sha256(data).hexdigest()[:16] == digest
    assert render_part_whole_sample(index, size, seed, mode="classic").label == sample.label


def test_recognition_mode_masks_soup_and_balanced_classes():
    for index in range(30):
        sample = render_part_whole_sample(index, SIZE, seed=0, mode="recognition")
        parts = set(np.unique(sample.part_mask)) - {0}

        assert sample.label == index % len(RECOGNITION_CLASSES)
        assert parts and parts <= set(PARTS_OF_CLASS[sample.source_class]), (index, parts)
        if sample.label == SOUP_LABEL:
            # the parts of a whole, with no whole: nothing is the object
            assert not sample.object_mask.any()
            assert sample.source_class == (index // len(RECOGNITION_CLASSES)) % len(PART_WHOLE_CLASSES)
        else:
            assert sample.source_class == sample.label
            np.testing.assert_array_equal(sample.object_mask > 0, sample.part_mask > 0)
            assert set(np.unique(sample.object_mask)) == {0, sample.label + 1}


def test_recognition_mode_parts_differ_in_appearance_and_share_it_with_the_background():
    """Each part type's median color is far from the other part types' (different palette entries) but close
    to some background pixels' (the patchwork and the distractors use the same palette)."""
    shared, distinct = 0, 0
    for index in range(0, 40, 5):  # quadrupeds: four part types, four palette entries
        sample = render_part_whole_sample(index, 64, seed=2, mode="recognition")
        pixels = sample.image.astype(np.float64)
        medians = [np.median(pixels[sample.part_mask == part], 0) for part in np.unique(sample.part_mask) if part]
        gaps = [np.abs(a - b).max() for i, a in enumerate(medians) for b in medians[i + 1 :]]
        distinct += int(min(gaps) > 20)
        background = pixels[sample.part_mask == 0]
        shared += int(all(np.abs(background - median).max(1).min() < 15 for median in medians))
    assert distinct >= 6 and shared >= 6


def test_color_clustering_finds_the_object_much_worse_in_recognition_mode():
    """How we check that color grouping does not solve the new data: pixel Lab k-means into 4 clusters, scored by
    the best single cluster's IoU with the object, falls clearly below its score on the classic data."""
    from processing.evaluation.color_baselines import color_kmeans_hierarchy
    from processing.evaluation.segment_scores import best_segment_iou

    def mean_best_iou(mode):
        samples = [render_part_whole_sample(index, SIZE, seed=5, mode=mode) for index in range(20)]
        return np.nanmean([best_segment_iou(color_kmeans_hierarchy(s.image, [4])[0], s.object_mask) for s in samples])

    classic, recognition = mean_best_iou("classic"), mean_best_iou("recognition")

    assert recognition < classic - 0.08, (classic, recognition)


def test_recognition_dataset_has_five_classes(tmp_path):
    dataset = make_part_whole_dataset(5, SIZE, seed=0, mode="recognition")
    write_part_whole_imagefolder(dataset, tmp_path)

    assert dataset.features["label"].names == list(RECOGNITION_CLASSES)
    assert dataset["label"] == [0, 1, 2, 3, SOUP_LABEL]
    assert load_part_whole_imagefolder(tmp_path).features["label"].names == list(RECOGNITION_CLASSES)
    with pytest.raises(ValueError, match=r"`mode` must be one of \('classic', 'recognition'\), got 'hard'"):
        render_part_whole_sample(0, SIZE, mode="hard")
