"""The decode-once cache and batched inference, checked against timm's own transforms and a plain forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit.data.decode_cache import DecodeCache, Preprocessing, decode_split
from audit.data.sources import Split, load_digits
from audit.running.predict import predict
from tests.test_imagenet_photos import write_crops

LITE0_CFG = {"input_size": (3, 96, 96), "crop_pct": 0.875, "crop_mode": "center", "interpolation": "bicubic",
             "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    paths = write_crops(folder, "chelsea", 5) + write_crops(folder, "coffee", 5, seed=1)
    return Split(np.array([0] * 5 + [1] * 5), paths=[str(p) for p in paths])


def test_cache_is_shared_by_models_with_the_same_geometry(files):
    a = Preprocessing.from_config(LITE0_CFG)
    b = Preprocessing.from_config({**LITE0_CFG, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})
    c = Preprocessing.from_config(LITE0_CFG, image_size=64)
    assert a.key == b.key == "96x96-center0.875-bicubic" and c.key != a.key
    cache = DecodeCache()
    first, second, third = cache.get(files, a), cache.get(files, b), cache.get(files, c)
    assert second.images is first.images and second.seconds == 0.0
    assert cache.stats == {"decoded": 2, "memory_hits": 1, "disk_hits": 0}
    assert first.images.shape == (10, 3, 96, 96) and third.images.shape == (10, 3, 64, 64)
    assert first.images.dtype == np.uint8


def test_cached_pixels_equal_timms_eval_transform(files):
    from PIL import Image
    from timm.data import create_transform

    prep = Preprocessing.from_config(LITE0_CFG)
    images = DecodeCache().get(files, prep).images
    reference = create_transform(**LITE0_CFG)  # ToTensor + Normalize, as in timm's validate.py
    mean = torch.tensor(prep.mean).view(3, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1)
    for i in (0, 7):
        with Image.open(files.paths[i]) as img:
            expected = reference(img.convert("RGB"))
        ours = (torch.from_numpy(images[i]).float() / 255 - mean) / std
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("crop_mode", ["center", "squash"])
def test_torch_resizer_keeps_the_geometry_within_a_few_levels(files, crop_mode):
    cfg = {**LITE0_CFG, "crop_mode": crop_mode}
    exact = Preprocessing.from_config(cfg)
    fast = Preprocessing.from_config(cfg, resizer="torch")
    assert fast.key == exact.key + "-torch"  # its own cache entry: the pixels differ a little
    cache = DecodeCache()
    a = cache.get(files, exact).images.astype(int)
    b = cache.get(files, fast).images.astype(int)
    assert cache.stats["decoded"] == 2 and a.shape == b.shape
    diff = np.abs(a - b)
    assert diff.mean() < 0.1 and np.mean(diff > 2) < 0.002 and diff.max() <= 8
    assert not np.array_equal(a, b)  # it really is another resampler


def test_torch_resizer_refuses_what_it_cannot_reproduce():
    with pytest.raises(ValueError, match="resizer must be one of pil, torch"):
        Preprocessing.from_config(LITE0_CFG, resizer="cv2")
    border = Preprocessing.from_config({**LITE0_CFG, "crop_mode": "border"}, resizer="torch")
    with pytest.raises(ValueError, match="handles resize \\+ center crop"):
        border.decoder()


def test_parallel_decoding_equals_one_thread(files):
    prep = Preprocessing.from_config(LITE0_CFG)
    np.testing.assert_array_equal(decode_split(files, prep, workers=1), decode_split(files, prep, workers=4))
    sub = decode_split(files, prep, index=np.array([7, 2]), workers=2)
    np.testing.assert_array_equal(sub, decode_split(files, prep, workers=1)[[7, 2]])


def test_arrays_and_files_decode_alike(tmp_path):
    from PIL import Image

    digits = load_digits().val.subset(np.arange(6))
    paths = []
    for i, img in enumerate(digits.images):
        paths.append(str(tmp_path / f"{i}.png"))  # lossless, so the pixels are the array's
        Image.fromarray(img[:, :, 0]).save(paths[-1])
    prep = Preprocessing.from_config({**LITE0_CFG, "input_size": (3, 32, 32)})
    from_arrays = DecodeCache().get(digits, prep).images
    from_files = DecodeCache().get(Split(digits.labels, paths=paths), prep).images
    np.testing.assert_array_equal(from_arrays, from_files)
    # grayscale (C = 1) is replicated to three equal channels
    np.testing.assert_array_equal(from_arrays[:, 0], from_arrays[:, 2])
    assert from_arrays.shape == (6, 3, 32, 32)


def test_disk_cache_is_reused_by_a_new_process_cache(files, tmp_path):
    prep = Preprocessing.from_config(LITE0_CFG)
    first = DecodeCache(tmp_path).get(files, prep)
    (file,) = tmp_path.glob("*.npy")
    assert file.name.startswith(prep.key)
    fresh = DecodeCache(tmp_path)
    again = fresh.get(files, prep)
    assert fresh.stats["disk_hits"] == 1 and fresh.stats["decoded"] == 0
    np.testing.assert_array_equal(again.images, first.images)


@pytest.fixture(scope="module")
def lite0():
    from audit.models.pretrained import load_model, parse_spec

    return load_model(parse_spec("efficientnet_lite0")).model


def test_predict_equals_a_plain_forward(files, lite0):
    prep = Preprocessing.from_config(LITE0_CFG)
    images = DecodeCache().get(files, prep).images
    x = (torch.from_numpy(images).float() / 255 - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(
        prep.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = lite0.eval().to(memory_format=torch.contiguous_format)(x).numpy()
    for bs in (3, 64):
        got = predict(lite0, images, mean=prep.mean, std=prep.std, batch_size=bs)
        np.testing.assert_allclose(got.values, expected, atol=2e-4, rtol=1e-4)
        assert got.batch_size == bs
    feats = predict(lite0, images, mean=prep.mean, std=prep.std, output="features")
    assert feats.values.shape == (10, lite0.num_features)


class _MemoryBound(torch.nn.Module):
    """A tiny network that runs out of memory above 8 images per batch, as a GPU would."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        if len(x) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.fc(x.mean(dim=(2, 3)))


def test_out_of_memory_halves_the_batch_and_retries():
    images = np.random.default_rng(0).integers(0, 256, size=(30, 3, 8, 8), dtype=np.uint8)
    model = _MemoryBound()
    out = predict(model, images, mean=(0.5,) * 3, std=(0.25,) * 3, batch_size=32)
    assert out.batch_size == 8
    x = (torch.from_numpy(images).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        expected = model.fc(x.mean(dim=(2, 3))).numpy()
    np.testing.assert_allclose(out.values, expected, atol=1e-5)


def test_predict_rejects_bad_input():
    with pytest.raises(ValueError, match=r"shape \(n_images, 3, H, W\)"):
        predict(_MemoryBound(), np.zeros((2, 8, 8, 3), np.uint8), mean=(0.5,) * 3, std=(0.5,) * 3)
    with pytest.raises(ValueError, match="output must be one of"):
        predict(_MemoryBound(), np.zeros((2, 3, 8, 8), np.uint8), mean=(0.5,) * 3, std=(0.5,) * 3, output="x")
