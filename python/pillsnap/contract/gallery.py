"""The known drugs as points in feature space: class means, one shared covariance, and the drugs
a pharmacy enrolled from a few photos without retraining.

    from pillsnap.contract.gallery import Gallery      # Triton: import pillsnap_gallery
    gallery = Gallery.load(Path("artifacts/export/gallery.npz"))
    d2 = gallery.distances(features)          # (n, classes): squared Mahalanobis, normalised
    gallery = gallery.enrolled_with(entry, whitened_features)   # a new drug, version + 1
    gallery.save(path)                        # atomic; the previous version kept for rollback

Training fits, on the classifier's pooled features, a mean per class and one covariance
shared by all classes (shrunk towards its mean variance so that a few thousand crops in
1,280 dimensions still invert: ``pillsnap.train.openset``). Stored whitened: ``whiten`` is
``W`` with ``W W^T`` the precision matrix, so the Mahalanobis distance is a plain squared
distance ``|f W - m W|^2`` between a crop's whitened features and a class's whitened mean.
An enrolled drug is one more row: the mean of its photos' whitened features. A mean of
``n`` photos is itself off by ``1/n`` of the class's spread, so every distance is divided by
``1 + 1/n``: a pill of a drug enrolled from 5 photos is then as far from its mean, on
average, as a pill of a trained drug from its (``tests/contract/test_gallery.py``). And a
drug the network never learnt is not drawn together as its classes are: its photos spread
more, in directions the trained classes hardly vary in, which the whitening stretches. So an
enrolled row also has a ``scale``: its photos' spread against ``spread``, the trained
classes' own (measured on served crops at export), shrunk towards 1 for few photos and
never under 1 (``enrolled_scale``); its distances are divided by it. Trained rows have 1.
A row so widened also pays for its width as a Gaussian does, ``d log(width)`` (``d``
features, width ``(1 + 1/n) * scale``): the distance is minus twice the log-likelihood, up to
a constant. Without that term a wide row draws in every pill near it, known drugs' too
(measured on the demo: known top-1 fell by 5-13 points after enrolling its held-out drugs,
1-3 points with it; docs/benchmarks.md).

The file (``gallery.npz``, numpy's own format, no pickles) sits beside the models in an
export folder and in Triton's ``postprocess`` model; ``GalleryFile`` notices when an
enrollment replaced it (a rename: a new inode) and loads the new one, so neither server is
restarted. numpy only and no ``pillsnap`` import: export copies this file into Triton.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

GALLERY_FILE = "gallery.npz"
HISTORY_DIR = "gallery_history"  # earlier versions, for rollback
FORMAT = 1


class GalleryError(ValueError):
    """A gallery file that cannot be used, or a change that would break one."""


@dataclass(frozen=True)
class Enrolled:
    """A drug added without retraining: its drug-table entry and where its mean came from."""

    k_code: str
    drug: Mapping[str, Any]  # the drug table's entry (name, EDI codes, shape, ...)
    photos: int
    digests: tuple[str, ...] = ()  # sha256 (16 hex) of each photo, for the audit trail
    added: str = ""  # ISO time


@dataclass(frozen=True)
class Gallery:
    """Class means in whitened feature space; the first ``trained`` are the classifier's
    classes (in logit order), the rest enrolled drugs (``enrolled``, same order)."""

    k_codes: tuple[str, ...]
    means: np.ndarray  # (classes, d) float32, whitened
    counts: np.ndarray  # (classes,) photos or crops behind each mean; 0: none (never near)
    whiten: np.ndarray  # (d, d) float32
    trained: int
    enrolled: tuple[Enrolled, ...] = ()
    version: int = 1
    parent: int | None = None  # the version this one was made from (None: the export's own)
    # per row, what its distances are divided by besides 1 + 1/n (None: all 1)
    scales: np.ndarray | None = None
    # the trained classes' mean squared whitened distance of a pill to its own class mean
    # (0: not measured: enrolled rows then get scale 1)
    spread: float = 0.0
    # float64 copies for the arithmetic: a float32 sum of d products moves with the BLAS
    # kernel a batch size picks, and a pill near the threshold must not flip with its batch
    _means64: np.ndarray = field(init=False, repr=False, compare=False)
    _whiten64: np.ndarray = field(init=False, repr=False, compare=False)
    _sq: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "k_codes", tuple(self.k_codes))
        means = np.ascontiguousarray(self.means, dtype=np.float32)
        counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        whiten = np.ascontiguousarray(self.whiten, dtype=np.float32)
        n, d = means.shape if means.ndim == 2 else (0, 0)
        if means.ndim != 2 or whiten.shape != (d, d) or counts.shape != (n,) \
                or len(self.k_codes) != n:
            raise GalleryError(f"inconsistent gallery: {len(self.k_codes)} K-codes, means "
                               f"{means.shape}, counts {counts.shape}, whiten {whiten.shape}")
        if not 0 < self.trained <= n or len(self.enrolled) != n - self.trained:
            raise GalleryError(f"inconsistent gallery: {self.trained} trained classes and "
                               f"{len(self.enrolled)} enrolled drugs for {n} means")
        if [e.k_code for e in self.enrolled] != list(self.k_codes[self.trained:]):
            raise GalleryError("inconsistent gallery: enrolled drugs out of step with K-codes")
        if len(set(self.k_codes)) != n:
            raise GalleryError("inconsistent gallery: a K-code appears twice")
        scales = (np.ones(n) if self.scales is None
                  else np.asarray(self.scales, dtype=np.float64).reshape(-1))
        if scales.shape != (n,) or not (scales > 0).all():
            raise GalleryError(f"inconsistent gallery: scales {scales.shape} for {n} means")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "whiten", whiten)
        object.__setattr__(self, "_means64", means.astype(np.float64))
        object.__setattr__(self, "_whiten64", whiten.astype(np.float64))
        object.__setattr__(self, "_sq", (self._means64 ** 2).sum(1))

    @classmethod
    def from_statistics(cls, k_codes: Sequence[str], means: np.ndarray, precision: np.ndarray,
                        counts: np.ndarray) -> Gallery:
        """Class means and the shared precision matrix (training's fit) -> a gallery."""
        whiten = whitening(precision)
        return cls(tuple(k_codes), np.asarray(means, np.float64) @ whiten, counts, whiten,
                   trained=len(k_codes))

    @property
    def dim(self) -> int:
        return int(self.whiten.shape[0])

    @property
    def enrolled_codes(self) -> tuple[str, ...]:
        return self.k_codes[self.trained:]

    def drugs(self) -> dict[str, Mapping[str, Any]]:
        """The enrolled drugs' table entries (K-code -> entry)."""
        return {e.k_code: e.drug for e in self.enrolled}

    def whitened(self, features: np.ndarray) -> np.ndarray:
        """Pooled features (n, d) -> whitened (n, d), float64."""
        f = np.asarray(features, dtype=np.float64).reshape(-1, self.dim)
        return f @ self._whiten64

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(n, classes) squared Mahalanobis distances to every class mean, each divided by
        its width ``(1 + 1/count) * scale`` (a mean of few photos is itself uncertain) plus
        ``dim * log(width)``; inf for empty classes."""
        return self.whitened_distances(self.whitened(features))

    def whitened_distances(self, g: np.ndarray) -> np.ndarray:
        """``distances`` of features already whitened (``whitened``), (n, d)."""
        g = np.asarray(g, dtype=np.float64).reshape(-1, self.dim)
        d2 = (g ** 2).sum(1)[:, None] - 2.0 * (g @ self._means64.T) + self._sq[None, :]
        counts = self.counts.astype(np.float64)
        with np.errstate(divide="ignore"):
            spread = (1.0 + 1.0 / counts) * self.scales
            # minus twice the Gaussian log-likelihood: a wider class pays log det for its
            # width, or it would draw every pill near it (a sink)
            d2 = np.maximum(d2, 0.0) / spread[None, :] + (self.dim * np.log(spread))[None, :]
        d2[:, counts == 0] = np.inf
        return d2

    def enrolled_with(self, entry: Enrolled, whitened: np.ndarray) -> Gallery:
        """This gallery plus ``entry``, whose mean is that of ``whitened`` (n, d) features
        and whose scale is ``enrolled_scale`` of them."""
        if entry.k_code in self.k_codes:
            raise GalleryError(f"{entry.k_code} is already known")
        g = np.asarray(whitened, dtype=np.float64).reshape(-1, self.dim)
        if not len(g) or not np.isfinite(g).all():
            raise GalleryError(f"{entry.k_code}: no usable features to enroll")
        return dataclasses.replace(
            self, k_codes=(*self.k_codes, entry.k_code),
            means=np.vstack([self.means, g.mean(0, keepdims=True)]),
            counts=np.append(self.counts, len(g)),
            scales=np.append(self.scales, enrolled_scale(g, self.spread)),
            enrolled=(*self.enrolled, entry), version=self.version + 1, parent=self.version)

    def without(self, k_code: str) -> Gallery:
        """This gallery less the enrolled drug ``k_code`` (trained classes cannot go)."""
        if k_code in self.k_codes[:self.trained]:
            raise GalleryError(f"{k_code} is one of the classifier's own classes, not an "
                               "enrolled drug: it cannot be removed without retraining")
        if k_code not in self.k_codes:
            raise GalleryError(f"{k_code} is not enrolled")
        keep = np.array([c != k_code for c in self.k_codes])
        return dataclasses.replace(
            self, k_codes=tuple(c for c in self.k_codes if c != k_code),
            means=self.means[keep], counts=self.counts[keep], scales=self.scales[keep],
            enrolled=tuple(e for e in self.enrolled if e.k_code != k_code),
            version=self.version + 1, parent=self.version)

    # -------------------------------------------------------------------- the file

    def save(self, path: Path, *, keep_history: bool = True) -> Path:
        """Write atomically (a temporary file, then a rename); the file it replaces is kept
        under ``gallery_history/`` beside it (``rollback``)."""
        path = Path(path)
        meta = {"format": FORMAT, "version": self.version, "parent": self.parent,
                "trained": self.trained, "spread": self.spread,
                "enrolled": [dataclasses.asdict(e) for e in self.enrolled]}
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gallery-", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, k_codes=np.array(self.k_codes, dtype=np.str_), means=self.means,
                         counts=self.counts, whiten=self.whiten, scales=self.scales,
                         meta=np.array(json.dumps(meta, ensure_ascii=False)))
                out.flush()
                os.fsync(out.fileno())
            if keep_history and path.is_file():
                _archive(path)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path) -> Gallery:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in ("k_codes", "means", "counts", "whiten", "meta")}
                arrays["scales"] = data["scales"] if "scales" in data.files else None
        except FileNotFoundError:
            raise GalleryError(f"no gallery at {path}: export the model again "
                               "(python -m pillsnap.export)") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # damage
            raise GalleryError(f"cannot read the gallery {path}: {exc}") from None
        try:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("format") != FORMAT:
                raise GalleryError(f"{path} has gallery format {meta.get('format')}, this "
                                   f"version reads {FORMAT}")
            enrolled = tuple(Enrolled(e["k_code"], e["drug"], int(e["photos"]),
                                      tuple(e.get("digests", ())), str(e.get("added", "")))
                             for e in meta["enrolled"])
            parent = meta.get("parent")
            return cls(tuple(str(k) for k in arrays["k_codes"]), arrays["means"],
                       arrays["counts"], arrays["whiten"], int(meta["trained"]), enrolled,
                       int(meta["version"]), None if parent is None else int(parent),
                       arrays["scales"], float(meta.get("spread", 0.0)))
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, GalleryError):
                raise GalleryError(f"{path}: {exc}") from None
            raise GalleryError(f"{path} is not a PillSnap gallery: {exc}") from None


PRIOR_PHOTOS = 2  # photos' worth of belief that a new drug spreads as a trained one does


def enrolled_scale(whitened: np.ndarray, spread: float) -> float:
    """How much wider than a trained class a new drug's photos spread (at least 1): their
    unbiased mean squared distance to their mean over ``spread``, shrunk towards 1 by
    ``PRIOR_PHOTOS`` (one photo says nothing of its spread: 1)."""
    g = np.asarray(whitened, dtype=np.float64)
    n = len(g)
    if n < 2 or spread <= 0:
        return 1.0
    ratio = float(((g - g.mean(0)) ** 2).sum(1).mean() * n / (n - 1)) / spread
    return max(1.0, (PRIOR_PHOTOS + (n - 1) * ratio) / (PRIOR_PHOTOS + n - 1))


def class_spread(whitened: np.ndarray, labels: np.ndarray, means: np.ndarray) -> float:
    """The mean squared distance of pills (whitened, with their class labels) to their own
    class's whitened mean: a trained class's spread, for ``enrolled_scale``."""
    g = np.asarray(whitened, dtype=np.float64)
    own = np.asarray(means, dtype=np.float64)[np.asarray(labels)]
    return float(((g - own) ** 2).sum(1).mean()) if len(g) else 0.0


def whitening(precision: np.ndarray) -> np.ndarray:
    """``W`` with ``W W^T = precision`` (its Cholesky factor), so ``|x W|^2 = x P x^T``."""
    p = np.asarray(precision, dtype=np.float64)
    p = (p + p.T) / 2.0  # float32 round trips leave it a hair from symmetric
    try:
        return np.linalg.cholesky(p).astype(np.float32)
    except np.linalg.LinAlgError:
        raise GalleryError("the precision matrix is not positive definite: the open-set "
                           "statistics are broken; train again") from None


def history(path: Path) -> list[Path]:
    """The earlier versions of ``path`` kept for rollback, oldest first."""
    folder = Path(path).parent / HISTORY_DIR
    return sorted(folder.glob("gallery.v*.npz"), key=lambda p: int(p.stem.split(".v")[1]))


def _archive(path: Path) -> None:
    """Keep the current file as ``gallery_history/gallery.v<version>.npz`` (a hard link where
    the file system allows, else a copy)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(json.loads(str(data["meta"]))["version"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return  # a damaged current file is not worth keeping
    folder = path.parent / HISTORY_DIR
    folder.mkdir(exist_ok=True)
    target = folder / f"gallery.v{version}.npz"
    if target.exists():
        return
    try:
        os.link(path, target)
    except OSError:
        target.write_bytes(path.read_bytes())


class GalleryFile:
    """A gallery read from ``path`` and read again whenever the file is replaced (a stat per
    ``current()``: an enrollment shows in the next answer, with no server restart)."""

    def __init__(self, path: Path, gallery: Gallery | None = None) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._gallery = gallery
        if gallery is None:
            self.current()
        else:
            self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> Gallery:
        stamp = self._stat()
        if self._gallery is None or (stamp is not None and stamp != self._stamp):
            try:
                self._gallery = Gallery.load(self.path)
            except GalleryError as exc:
                if self._gallery is None:
                    raise
                # a damaged replacement never takes the served gallery down: keep the last
                # good one (the enrollment command writes atomically, so this is rare)
                logger.error("%s; still serving gallery version %d", exc, self._gallery.version)
            self._stamp = stamp
        return self._gallery
