"""The gallery of class means: Mahalanobis distances, drugs enrolled from a few photos, and a
file that servers read again when it is replaced.

    python -m pytest tests/contract/test_gallery.py -q
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pillsnap.contract.gallery import (
    Enrolled,
    Gallery,
    GalleryError,
    GalleryFile,
    history,
    whitening,
)


def _gallery(classes: int = 3, d: int = 4, seed: int = 0) -> tuple[Gallery, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 5, (classes, d))
    a = rng.normal(0, 1, (d, d))
    cov = a @ a.T + np.eye(d)
    precision = np.linalg.inv(cov)
    codes = tuple(f"K-{i:06d}" for i in range(1, classes + 1))
    return Gallery.from_statistics(codes, means, precision, np.full(classes, 1000)), precision


def test_distances_are_the_mahalanobis_distances_of_the_class_statistics() -> None:
    rng = np.random.default_rng(1)
    means = rng.normal(0, 5, (3, 4))
    a = rng.normal(0, 1, (4, 4))
    precision = np.linalg.inv(a @ a.T + np.eye(4))
    counts = np.array([1000, 4, 0])  # a well-known class, one of 4 photos, an empty one
    gallery = Gallery.from_statistics(("K-1", "K-2", "K-3"), means, precision, counts)
    probe = rng.normal(0, 5, (6, 4))
    brute = np.stack([np.einsum("nd,de,ne->n", probe - m, precision, probe - m)
                      for m in means], axis=1)
    d2 = gallery.distances(probe)
    for c, n in ((0, 1000), (1, 4)):  # minus twice the log-likelihood: width and log det
        width = 1 + 1 / n
        np.testing.assert_allclose(d2[:, c], brute[:, c] / width + 4 * np.log(width), rtol=1e-5)
    assert np.isinf(d2[:, 2]).all()  # a class with no crop never vouches for a pill
    w = whitening(precision)
    np.testing.assert_allclose(w @ w.T, precision, rtol=1e-5, atol=1e-6)


def test_a_mean_of_few_photos_is_as_near_as_a_trained_class_on_average() -> None:
    """Why distances are divided by 1 + 1/n: a pill of a drug enrolled from 5 photos is,
    on average, as far from that mean as a pill of a trained drug from its own."""
    rng = np.random.default_rng(2)
    d = 32
    gallery = Gallery.from_statistics(("K-1",), np.zeros((1, d)), np.eye(d), [100_000])
    trained = gallery.distances(rng.normal(0, 1, (4000, d)))[:, 0].mean() - d * np.log(1 + 1e-5)
    enrolled = []
    for i in range(200):
        centre = rng.normal(0, 3, d)
        photos = centre + rng.normal(0, 1, (5, d))
        added = gallery.enrolled_with(Enrolled(f"K-9{i:05d}", {}, 5), gallery.whitened(photos))
        probes = centre + rng.normal(0, 1, (20, d))
        # the normalised distance, without the width's log det
        enrolled.append(added.distances(probes)[:, 1].mean() - d * np.log(1 + 1 / 5))
    assert np.mean(enrolled) == pytest.approx(trained, rel=0.03)
    assert trained == pytest.approx(d, rel=0.03)


def test_enrolling_and_removing_drugs() -> None:
    gallery, _ = _gallery()
    entry = Enrolled("K-777777", {"name_ko": "새약정"}, photos=3, digests=("ab", "cd", "ef"))
    photos = gallery.whitened(np.ones((3, 4)))
    added = gallery.enrolled_with(entry, photos)
    assert added.k_codes[-1] == "K-777777" and added.enrolled == (entry,)
    assert added.version == gallery.version + 1 and added.counts[-1] == 3
    assert added.drugs() == {"K-777777": {"name_ko": "새약정"}}
    np.testing.assert_allclose(added.means[-1], photos.mean(0), rtol=1e-6)
    with pytest.raises(GalleryError, match="already known"):
        added.enrolled_with(entry, photos)
    with pytest.raises(GalleryError, match="already known"):
        gallery.enrolled_with(Enrolled("K-000001", {}, 1), photos[:1])
    with pytest.raises(GalleryError, match="no usable features"):
        gallery.enrolled_with(Enrolled("K-1", {}, 1), np.full((1, 4), np.nan))
    removed = added.without("K-777777")
    assert removed.k_codes == gallery.k_codes and removed.version == added.version + 1
    with pytest.raises(GalleryError, match="cannot be removed without retraining"):
        added.without("K-000001")
    with pytest.raises(GalleryError, match="not enrolled"):
        added.without("K-123456")


def test_the_file_round_trip_keeps_history_and_refuses_damage(tmp_path: Path) -> None:
    gallery, _ = _gallery()
    path = tmp_path / "gallery.npz"
    gallery.save(path)
    loaded = Gallery.load(path)
    assert loaded.k_codes == gallery.k_codes and loaded.version == 1
    np.testing.assert_array_equal(loaded.means, gallery.means)
    entry = Enrolled("K-777777", {"name_ko": "새약정", "edi_codes": ["641234567"]}, 2)
    added = gallery.enrolled_with(entry, gallery.whitened(np.zeros((2, 4))))
    added.save(path)
    again = Gallery.load(path)
    assert again.enrolled == (entry,) and again.version == 2
    assert [p.name for p in history(path)] == ["gallery.v1.npz"]  # for a rollback
    assert Gallery.load(history(path)[0]).version == 1
    assert not list(tmp_path.glob(".gallery-*"))  # no temporary file left behind

    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(GalleryError, match="cannot read the gallery"):
        Gallery.load(broken)
    with pytest.raises(GalleryError, match="no gallery at"):
        Gallery.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", k_codes=np.array(["a"]))
    with pytest.raises(GalleryError, match="cannot read the gallery"):
        Gallery.load(tmp_path / "other.npz")


def test_a_replaced_file_is_read_again_and_a_damaged_one_is_not_served(tmp_path: Path) -> None:
    gallery, _ = _gallery()
    path = tmp_path / "gallery.npz"
    gallery.save(path)
    served = GalleryFile(path)
    assert served.current().version == 1
    added = gallery.enrolled_with(Enrolled("K-777777", {}, 1), gallery.whitened(np.ones((1, 4))))
    added.save(path)
    assert served.current().version == 2 and served.current().k_codes[-1] == "K-777777"
    # someone writes garbage over it (not the enroll command, which renames whole files):
    # the server keeps the last good gallery
    tmp = tmp_path / "garbage"
    tmp.write_bytes(b"not a zip")
    os.replace(tmp, path)
    assert served.current().version == 2
    with pytest.raises(GalleryError):
        GalleryFile(path)  # but a server cannot start on it


def test_an_enrolled_drug_that_spreads_more_gets_a_wider_class(tmp_path: Path) -> None:
    """A drug the network never learnt spreads more than a trained class: its row is
    scaled by its photos' spread against the trained classes' (shrunk towards 1 for few
    photos, never under 1), so its own pills fall inside it."""
    from pillsnap.contract.gallery import PRIOR_PHOTOS, enrolled_scale

    rng = np.random.default_rng(3)
    d = 16
    gallery = Gallery.from_statistics(("K-1",), np.zeros((1, d)), np.eye(d), [10_000])
    gallery = replace(gallery, spread=float(d))  # a trained pill lies d from its mean
    centre = rng.normal(0, 10, d)
    photos = centre + rng.normal(0, 2.0, (6, d))  # spreads 4x as much
    scale = enrolled_scale(photos, gallery.spread)
    ratio = ((photos - photos.mean(0)) ** 2).sum(1).mean() * 6 / 5 / d
    assert scale == pytest.approx((PRIOR_PHOTOS + 5 * ratio) / (PRIOR_PHOTOS + 5))
    assert 2.0 < scale < 4.5
    added = gallery.enrolled_with(Enrolled("K-9", {}, 6), photos)
    assert added.scales.tolist() == [1.0, pytest.approx(scale)]
    probe = centre + rng.normal(0, 2.0, (200, d))
    width = (1 + 1 / 6) * scale
    raw = ((probe - photos.mean(0)) ** 2).sum(1)
    np.testing.assert_allclose(added.distances(probe)[:, 1], raw / width + d * np.log(width),
                               rtol=1e-6)
    assert enrolled_scale(photos[:1], gallery.spread) == 1.0  # one photo: no spread to see
    tight = centre + rng.normal(0, 0.1, (6, d))
    assert enrolled_scale(tight, gallery.spread) == 1.0  # never narrower than a trained one
    assert enrolled_scale(photos, 0.0) == 1.0  # spread unknown (an older gallery)
    again = Gallery.load(added.save(tmp_path / "g.npz"))
    assert again.scales.tolist() == added.scales.tolist() and again.spread == float(d)
