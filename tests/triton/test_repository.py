"""``python -m pillsnap.export --triton``: the repository's layout and its config files.

    PYTHONPATH=python python -m pytest tests/triton/test_repository.py -q

Configs are parsed with Triton's own protobuf schema (tritonclient's model_config_pb2), so a
typo in a field name fails here, not only when a server loads the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from pillsnap.config import load_config
from pillsnap.contract import ops, photo
from pillsnap.errors import ModelError
from pillsnap.export.triton.repository import write_repository
from pillsnap.infer.bundle import load_bundle

PYTHON_MODELS = ("preprocess", "crop_classify", "crop_classify_single", "postprocess")
ONNX_MODELS = ("classifier", "detector")


def config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def names(tensors: object) -> list[str]:
    return [t.name for t in tensors]


def test_layout_versions_and_one_ops_source(zero_repo: Path, exported: Path) -> None:
    for name in (*PYTHON_MODELS, *ONNX_MODELS, "pill_single", "pill_combo"):
        assert (zero_repo / name / "config.pbtxt").is_file(), name
        assert (zero_repo / name / "1").is_dir(), name
    for name in PYTHON_MODELS:
        folder = zero_repo / name / "1"
        assert (folder / "model.py").is_file()
        # the models import copies of the one ops and photo files, byte for byte
        assert (folder / "pillsnap_ops.py").read_bytes() == Path(ops.__file__).read_bytes()
        assert (folder / "pillsnap_photo.py").read_bytes() == \
            Path(photo.__file__).read_bytes()
    for name in ONNX_MODELS:
        assert (zero_repo / name / "1" / "model.onnx").read_bytes() == \
            (exported / name / "model.onnx").read_bytes()
        assert (zero_repo / name / "configs" / "cpu.pbtxt").is_file()
    tables = zero_repo / "postprocess" / "1"
    assert json.loads((tables / "drugs.json").read_text(encoding="utf-8")) == \
        json.loads((exported / "drugs.json").read_text(encoding="utf-8"))
    record = json.loads((zero_repo / "pillsnap_repository.json").read_text(encoding="utf-8"))
    assert record["model_version"] == load_bundle(exported).model_version
    assert record["ensembles"] == ["pill_single", "pill_combo"]


def test_onnx_configs_list_the_model_s_inputs_and_outputs(zero_repo: Path) -> None:
    for name in ONNX_MODELS:
        gpu = config(zero_repo / name / "config.pbtxt")
        cpu = config(zero_repo / name / "configs" / "cpu.pbtxt")
        session = ort.InferenceSession(str(zero_repo / name / "1" / "model.onnx"))
        assert names(gpu.input) == [i.name for i in session.get_inputs()]
        assert names(gpu.output) == [o.name for o in session.get_outputs()]
        assert gpu.backend == "onnxruntime" and cpu.backend == "python" and cpu.name == name
        assert gpu.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        assert gpu.dynamic_batching.max_queue_delay_microseconds == 2000
        assert gpu.model_warmup[0].inputs["images"].zero_data
        assert not gpu.optimization.execution_accelerators.gpu_execution_accelerator
    assert config(zero_repo / "classifier" / "config.pbtxt").max_batch_size == 2


def test_every_cpu_twin_declares_its_gpu_config_s_tensors(zero_repo: Path) -> None:
    """A model served by the GPU config on the NGC image and by its CPU twin here must
    look the same to the ensembles: same name, batching, inputs and outputs (each with its
    type and dims). Every twin in the repository, not a list kept by hand."""
    twins = sorted(zero_repo.glob("*/configs/*.pbtxt"))
    assert {t.parent.parent.name for t in twins} == set(ONNX_MODELS)
    for twin in twins:
        gpu, cpu = config(twin.parent.parent / "config.pbtxt"), config(twin)
        assert cpu.name == gpu.name == twin.parent.parent.name
        assert cpu.max_batch_size == gpu.max_batch_size, twin
        for mine, theirs in ((cpu.input, gpu.input), (cpu.output, gpu.output)):
            assert [(t.name, t.data_type, list(t.dims)) for t in mine] == \
                [(t.name, t.data_type, list(t.dims)) for t in theirs], twin


def test_ensembles_expose_the_contract_and_wire_every_tensor(zero_repo: Path,
                                                              exported: Path) -> None:
    version = load_bundle(exported).model_version
    for name in ("pill_single", "pill_combo"):
        ens = config(zero_repo / name / "config.pbtxt")
        assert ens.platform == "ensemble" and ens.max_batch_size == 0
        assert [(t.name, t.data_type, list(t.dims)) for t in ens.input] == [
            ("IMAGE", model_config_pb2.TYPE_UINT8, [-1]),
            ("TOP_K", model_config_pb2.TYPE_INT32, [1])]
        assert [(t.name, t.data_type, list(t.dims)) for t in ens.output] == [
            ("RESULT", model_config_pb2.TYPE_STRING, [1])]
        assert ens.parameters["pillsnap_model_version"].string_value == version
        for step in ens.ensemble_scheduling.step:
            model = config(zero_repo / step.model_name / "config.pbtxt")
            # every input of every step is fed, every mapped output exists
            assert sorted(step.input_map) == sorted(names(model.input)), step.model_name
            assert set(step.output_map) <= set(names(model.output)), step.model_name
            if model.backend == "python" and step.model_name not in ONNX_MODELS:
                assert model.max_batch_size == 0, step.model_name
    single = [s.model_name for s in config(zero_repo / "pill_single" / "config.pbtxt")
              .ensemble_scheduling.step]
    assert single == ["preprocess", "detector", "crop_classify_single", "postprocess"]
    # the upload itself reaches crop_classify: on the Rust engine it decodes its crops there
    for name in ("pill_single", "pill_combo"):
        steps = config(zero_repo / name / "config.pbtxt").ensemble_scheduling.step
        assert steps[2].input_map["IMAGE"] == "IMAGE", name


def test_tensorrt_option_and_foreign_folders(exported: Path, tmp_path: Path) -> None:
    cfg = load_config(None, ["triton.tensorrt_fp16=true", "triton.warmup=false"],
                      env_file=None, environ={})
    write_repository(exported, tmp_path / "repo", cfg.triton, cfg.serve)
    gpu = config(tmp_path / "repo" / "classifier" / "config.pbtxt")
    trt = gpu.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    assert not gpu.model_warmup
    write_repository(exported, tmp_path / "repo", cfg.triton, cfg.serve)  # ours: rewritten
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="not a repository written by PillSnap"):
        write_repository(exported, tmp_path / "other", cfg.triton, cfg.serve)
