"""The class index: K-codes in a fixed order, built once and reused everywhere.

Training, evaluation, export and serving all read ``classes.json``; its hash is stored
in checkpoints, ONNX metadata and pack headers, so a model can never be paired with a
differently ordered index (a mistake a public attempt on this dataset made).

The classes a run trains are the scan's index narrowed by ``data.include_k_codes`` and
``data.exclude_k_codes`` (``training_classes``), in the index's order: drugs held out to
measure unknown drugs or to enroll later, discontinued ones, or a subset to try first.
``classes.json`` itself is never edited (its hash check would refuse it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pillsnap.config.schema import PillsnapConfig
from pillsnap.data.manifest import read_json, write_json
from pillsnap.errors import ConfigError, DataError
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)

CLASSES_FILE = "classes.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClassIndex:
    k_codes: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.k_codes)) != len(self.k_codes):
            raise DataError("class index has duplicate K-codes")
        object.__setattr__(self, "_pos", {code: i for i, code in enumerate(self.k_codes)})

    @classmethod
    def build(cls, codes: Iterable[str]) -> ClassIndex:
        return cls(tuple(sorted(set(codes))))

    def extended(self, codes: Iterable[str]) -> tuple[ClassIndex, list[str]]:
        """This index plus unseen codes appended in sorted order, so old ids stay valid."""
        new = sorted(set(codes) - set(self.k_codes))
        return ClassIndex(self.k_codes + tuple(new)), new

    def subset(self, codes: Iterable[str]) -> ClassIndex:
        """The given codes in this index's order (for stage subsets)."""
        wanted = set(codes)
        return ClassIndex(tuple(c for c in self.k_codes if c in wanted))

    def __len__(self) -> int:
        return len(self.k_codes)

    def __contains__(self, code: object) -> bool:
        return code in self._pos  # type: ignore[attr-defined]

    def index(self, code: str) -> int:
        try:
            return self._pos[code]  # type: ignore[attr-defined,no-any-return]
        except KeyError:
            raise DataError(f"K-code {code} is not in the class index") from None

    def indices(self, codes: Sequence[str]) -> list[int]:
        return [self.index(c) for c in codes]

    @property
    def hash(self) -> str:
        return hashlib.sha256("\n".join(self.k_codes).encode()).hexdigest()[:16]

    def save(self, path: Path) -> Path:
        if path.is_dir() or path.suffix != ".json":
            path = path / CLASSES_FILE
        write_json({"version": FORMAT_VERSION, "hash": self.hash, "num_classes": len(self),
                    "k_codes": list(self.k_codes)}, path)
        return path

    @classmethod
    def load(cls, path: Path) -> ClassIndex:
        """Load and verify; a file whose hash does not match its codes was edited by hand."""
        if path.is_dir():
            path = path / CLASSES_FILE
        data = read_json(path, "class index")
        try:
            index = cls(tuple(data["k_codes"]))
            stored = data["hash"]
        except (KeyError, TypeError) as exc:
            raise DataError(f"class index {path} lacks {exc}") from None
        if stored != index.hash:
            raise DataError(f"class index {path} hash {stored} does not match its K-codes "
                            f"({index.hash}); rebuild it with: python -m pillsnap.data scan")
        return index


def training_classes(cfg: PillsnapConfig, manifest_dir: Path | None = None) -> ClassIndex:
    """The scan's class index (``data.manifest_dir``) narrowed by ``data.include_k_codes``
    and ``data.exclude_k_codes``, in the index's order; the index itself when neither is set.
    An included K-code the index lacks is a ConfigError (a typo would silently train less);
    an excluded one is not trained anyway (a stage's index may lack it): one decision line."""
    index = ClassIndex.load(Path(manifest_dir or cfg.data.manifest_dir))
    include, exclude = cfg.data.include_k_codes, cfg.data.exclude_k_codes
    if include is None and not exclude:
        return index
    missing = sorted(c for c in include or () if c not in index)
    if missing:
        raise ConfigError(f"data.include_k_codes names K-codes the class index does not have: "
                          f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} "
                          f"(the scan's classes.json has {len(index)} K-codes)")
    absent = sorted(c for c in exclude if c not in index)
    if absent:
        log_decision(logger, "data.exclude_k_codes", f"{len(absent)} not in the index",
                     f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}: nothing to "
                     "leave out")
    wanted = set(include) if include is not None else set(index.k_codes)
    chosen = index.subset(wanted - set(exclude))
    if not len(chosen):
        raise ConfigError("data.include_k_codes and data.exclude_k_codes leave no class to "
                          "train")
    log_decision(logger, "classes", f"{len(chosen)} of {len(index)}",
                 f"data.include_k_codes ({'all' if include is None else len(include)}) less "
                 f"data.exclude_k_codes ({len(exclude)}); class hash {chosen.hash}")
    return chosen
