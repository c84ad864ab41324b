"""Triton's python models ``preprocess`` and ``crop_classify`` run here, without a server:
a stand-in ``triton_python_backend_utils`` carries the tensors.

    python -m pytest tests/triton/test_python_models.py -q

What they hand each other depends on the photo engine: on Pillow (the NGC container)
preprocess decodes the photo and passes it on as PHOTO; on the Rust engine PHOTO is empty
and crop_classify decodes its crops from the upload (IMAGE), so a damaged photo that only
the crops' decode reaches must still come back as ``corrupt: ...`` (INVALID_ARG).
"""

from __future__ import annotations

import importlib.util
import io
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pillsnap.contract import photo as photos

pytestmark = pytest.mark.skipif(not photos.native_available(), reason="extension not built")
COPIES = ("pillsnap_ops", "pillsnap_photo", "pillsnap_recipe", "pillsnap_gallery",
          "pillsnap_decide")


class Tensor:
    def __init__(self, name: str, value: np.ndarray) -> None:
        self.name, self.value = name, np.asarray(value)

    def as_numpy(self) -> np.ndarray:
        return self.value


class TritonError:
    INVALID_ARG = "INVALID_ARG"

    def __init__(self, message: str, code: str | None = None) -> None:
        self.text, self.code = message, code


class Response:
    def __init__(self, output_tensors: list[Tensor] | None = None,
                 error: TritonError | None = None) -> None:
        self.outputs = {t.name: t.value for t in output_tensors or []}
        self.error = error


def _stand_in() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = Tensor  # type: ignore[attr-defined]
    module.TritonError = TritonError  # type: ignore[attr-defined]
    module.InferenceResponse = Response  # type: ignore[attr-defined]
    module.TritonModelException = RuntimeError  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = (  # type: ignore[attr-defined]
        lambda request, name: request.get(name))
    return module


@pytest.fixture
def models(zero_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The repository's preprocess and crop_classify_single, each loaded from its folder."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _stand_in())
    monkeypatch.setattr(sys, "path", list(sys.path))  # each model puts its folder first
    loaded = {}
    for name in ("preprocess", "crop_classify_single"):
        folder = zero_repo / name / "1"
        for copy in COPIES:  # each model imports the copies in its own folder
            sys.modules.pop(copy, None)
        spec = importlib.util.spec_from_file_location(f"triton_{name}", folder / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.TritonPythonModel()
        model.initialize({})
        loaded[name] = model
    yield loaded
    for copy in COPIES:
        sys.modules.pop(copy, None)


def _upload(size: tuple[int, int] = (48, 64)) -> bytes:
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90)
    return buf.getvalue()


def _image(data: bytes) -> Tensor:
    return Tensor("IMAGE", np.frombuffer(data, dtype=np.uint8))


@pytest.mark.parametrize("engine", ["native", "pillow"])
def test_preprocess_hands_on_the_photo_only_where_pillow_decoded_it(
        models: dict[str, Any], engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(photos.ENGINE_ENV, engine)
    [response] = models["preprocess"].execute([{"IMAGE": _image(_upload())}])
    assert response.error is None
    shape = response.outputs["PHOTO"].shape
    assert shape == ((0, 0, 3) if engine == "native" else (64, 48, 3))
    assert response.outputs["DET_IMAGES"].shape[:2] == (1, 3)


def test_a_damage_only_the_crops_decode_finds_is_a_corrupt_upload(
        models: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(photos.ENGINE_ENV, "native")
    data = _upload((240, 320))[:-3000]  # the header is intact; under the 100,000-pixel limit
    settings = models["crop_classify_single"].settings
    anchors = np.zeros((1, 5, 8), dtype=np.float32)  # no box: the whole photo is cropped
    request = {"IMAGE": _image(data), "PHOTO": Tensor("PHOTO", np.zeros((0, 0, 3), np.uint8)),
               "DETECTIONS": Tensor("DETECTIONS", anchors),
               "PLACEMENT": Tensor("PLACEMENT", np.array([0.2, 0, 0, 240, 320, 64.0]))}
    assert settings["detect"]
    [response] = models["crop_classify_single"].execute([request])
    assert response.error is not None and response.error.code == TritonError.INVALID_ARG
    assert response.error.text.startswith("corrupt: "), response.error.text
