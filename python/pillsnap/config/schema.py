"""The typed config: every section, its defaults and its allowed choices.

``config.yaml`` at the repository root mirrors these defaults with comments; a test keeps
the two in step. Load a config with ``pillsnap.config.load_config`` (YAML, overrides, .env),
never by building these classes by hand from user input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from pillsnap.config.paths import ConfigPath, OptionalConfigPath

FeatureSet = Literal["mvp", "advanced", "production"]
Device = Literal["auto", "cpu", "cuda", "tensorrt"]  # serve.device (pillsnap.infer.device)
IoBinding = Literal["auto", "on", "off"]  # serve.io_binding (pillsnap.infer.binding)


class Section(BaseModel):
    """Base for every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class RunConfig(Section):
    name: str = "exp01"
    out_dir: ConfigPath = Field(default="runs", description="a run writes to out_dir/name")
    seed: int = 42
    deterministic: bool = False


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None  # None: LOG_LEVEL or INFO
    file: bool = True
    tensorboard: bool = True
    log_every_steps: int = Field(50, ge=1)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:  # LOG_LEVEL=debug in a .env is meant as DEBUG
        return value.upper() if isinstance(value, str) else value


class PipelineConfig(Section):
    mode: Literal["single", "combo"] = "single"


KCode = Annotated[str, StringConstraints(pattern=r"^K-\d{6}$")]


class DataConfig(Section):
    root: ConfigPath = Field(default="data/aihub", description="extracted AIHub tree")
    manifest_dir: ConfigPath = "artifacts/manifest"
    scan_workers: int = Field(0, ge=0)  # 0: all cores
    verify_images: Literal["header", "none"] = "header"
    stage_seed: int = 42  # python -m pillsnap.data stage: the subset's random draw
    # The classes to train, from the scan's class index (pillsnap.data.classes.training_classes):
    # only these K-codes (None: all), less these (held out for an open-set evaluation or to be
    # enrolled later, discontinued drugs). Pack, train, export and eval all follow them.
    include_k_codes: list[KCode] | None = None
    exclude_k_codes: list[KCode] = Field(default_factory=list)


class PackConfig(Section):
    out_dir: ConfigPath = "artifacts/pack"
    short_side: int = Field(480, ge=32)  # about 1.25x the classifier input (384)
    storage: Literal["jpeg", "raw_rgb"] = "jpeg"
    jpeg_quality: int = Field(90, ge=50, le=100)
    region: Literal["image", "pill"] = "pill"  # pill: the labelled box plus a margin
    pill_margin: float = Field(0.15, ge=0.0, le=1.0)
    workers: int = Field(0, ge=0)


class CacheConfig(Section):
    policy: Literal["hotset", "none"] = "hotset"
    hotset_gb: float = Field(24.0, ge=0.0)
    mlock: bool = False


class DataloaderConfig(Section):
    threads: int = Field(0, ge=0)  # 0: autotune from the candidates
    autotune: bool = True
    autotune_candidates: list[int] = Field(default_factory=lambda: [2, 4, 8, 12, 16])
    autotune_batches: int = Field(20, ge=1)
    prefetch_batches: int = Field(4, ge=1)
    pin_memory: bool = True
    drop_last: bool = True


class OpenSetConfig(Section):
    """How a pill unlike every known drug is told apart (``pillsnap.contract.decide``)."""

    score: Literal["msp", "max_logit", "energy", "mahalanobis"] = "mahalanobis"
    tar: float = Field(0.95, gt=0.0, lt=1.0)  # share of known validation pills accepted
    # training crops the Gaussian statistics are fitted on, after the last epoch; 0: none
    fit_samples: int = Field(100_000, ge=0)


class ClassifierConfig(Section):
    arch: str = "tf_efficientnetv2_s.in21k_ft_in1k"
    image_size: int = Field(384, ge=32)
    max_classes: int = Field(5000, ge=1)
    pretrained: bool = True
    # pretrained weights that cannot be loaded (offline, no cache) stop the run, unless this
    # allows training from random weights instead (one fallback line)
    allow_random_init: bool = False
    drop_rate: float = Field(0.3, ge=0.0, lt=1.0)
    drop_path_rate: float = Field(0.2, ge=0.0, lt=1.0)
    open_set: OpenSetConfig = Field(default_factory=OpenSetConfig)


class DetectorConfig(Section):
    arch: str = "yolo11m"
    image_size: int = Field(640, ge=32)
    pretrained: bool = True  # <arch>.pt (e.g. yolo11m.pt) in the working directory
    allow_random_init: bool = False  # no such file: from scratch instead of an error
    conf_threshold: float = Field(0.25, ge=0.0, le=1.0)
    iou_threshold: float = Field(0.45, ge=0.0, le=1.0)
    max_detections: int = Field(32, ge=1)


class ModelsConfig(Section):
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)


class EmaConfig(Section):
    enabled: bool = True
    decay: float = Field(0.9998, gt=0.0, lt=1.0)
    warmup_steps: int = Field(2000, ge=0)


class AutoBatchConfig(Section):
    enabled: bool = True
    max_batch: int = Field(256, ge=1)
    vram_headroom: float = Field(0.88, gt=0.0, le=1.0)
    warmup_steps: int = Field(3, ge=1)


OomStep = Literal["empty_cache", "force_fp16", "grad_accum", "halve_batch"]


class OomConfig(Section):
    steps: list[OomStep] = Field(
        default_factory=lambda: ["empty_cache", "force_fp16", "grad_accum", "halve_batch"]
    )
    max_retries: int = Field(6, ge=0)
    min_batch: int = Field(1, ge=1)


class EarlyStopConfig(Section):
    monitor: Literal["macro_f1", "top1", "val_loss"] = "macro_f1"
    patience: int = Field(5, ge=0)


class DetTrainConfig(Section):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(16, ge=1)
    patience: int = Field(20, ge=0)
    workers: int = Field(8, ge=0)
    include_single: bool = False  # also train the detector on single-pill photos
    # ultralytics' warm-up, in epochs (at least 100 iterations whenever it is above 0)
    warmup_epochs: float = Field(3.0, ge=0.0)
    # a time cap: after each epoch, fewer epochs when the planned ones would not fit
    max_minutes: float | None = Field(None, gt=0.0)


class TrainConfig(Section):
    task: Literal["cls", "det", "both"] = "cls"
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    grad_accum: int = Field(1, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)  # for batch_size x grad_accum on one process
    # How lr follows the global batch when auto batch, DDP or an OOM halving changes it:
    # sqrt (the rule for Adam-type optimisers), linear (SGD) or none.
    lr_scaling: Literal["sqrt", "linear", "none"] = "sqrt"
    weight_decay: float = Field(0.05, ge=0.0)
    scheduler: Literal["cosine", "onecycle"] = "cosine"
    warmup_epochs: float = Field(1.0, ge=0.0)
    clip_grad_norm: float | None = Field(1.0, gt=0.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    # random_resized_crop: RandomResizedCrop + flip (the loader's training path); none: the
    # evaluation resize + centre crop, still shuffled (small data sets, quick demos).
    augment: Literal["random_resized_crop", "none"] = "random_resized_crop"
    # RandomResizedCrop area range; torchvision's (0.08, 1.0) can cut an imprint away.
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: float = Field(0.5, ge=0.0, le=1.0)  # mirrors imprint text: 0 keeps it readable

    @field_validator("crop_scale")
    @classmethod
    def _scale_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {list(value)}")
        return value
    amp: bool = True
    amp_dtype: Literal["auto", "bf16", "fp16"] = "auto"
    tf32: bool = True
    channels_last: bool = True
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "default"
    cuda_graphs: bool = False
    grad_checkpointing: bool = False
    resume: str | None = None  # None, "last", or a checkpoint path
    # last.pt inside an epoch too (after an optimiser step, with the loader's position, so a
    # resume continues at the next batch): every N minutes and/or every N optimiser steps
    # (steps: the same places every run, for tests and short runs); 0: off
    checkpoint_every_minutes: float = Field(20.0, ge=0.0)
    checkpoint_every_steps: int = Field(0, ge=0)
    eval_every_epochs: int = Field(1, ge=1)
    # a time cap: after the first epoch, fewer epochs when the planned ones would not fit
    # (the learning-rate schedule follows); None: run train.epochs
    max_minutes: float | None = Field(None, gt=0.0)
    ema: EmaConfig = Field(default_factory=EmaConfig)
    auto_batch: AutoBatchConfig = Field(default_factory=AutoBatchConfig)
    oom: OomConfig = Field(default_factory=OomConfig)
    early_stopping: EarlyStopConfig = Field(default_factory=EarlyStopConfig)
    det: DetTrainConfig = Field(default_factory=DetTrainConfig)


class ParityConfig(Section):
    samples: int = Field(64, ge=1)
    cls_max_mse: float = Field(1e-6, ge=0.0)
    det_max_map_delta: float = Field(0.01, ge=0.0)
    det_min_iou: float = Field(0.95, ge=0.0, le=1.0)


class ExportConfig(Section):
    out_dir: ConfigPath = "artifacts/export"
    opset: int = Field(17, ge=13)
    dynamic_batch: bool = True
    parity: ParityConfig = Field(default_factory=ParityConfig)
    int8_calibration_images: int = Field(256, ge=1)
    # validation single-pill photos of known drugs sent through the exported pipeline to set
    # the open-set threshold where serving meets it (detector boxes, not labelled ones); 0: off
    open_set_photos: int = Field(500, ge=0)


class EnrollConfig(Section):
    """``python -m pillsnap.enroll``: a drug added to a served model from a few photos."""

    min_photos: int = Field(3, ge=1)  # fewer give a class mean too rough to trust
    max_photos: int = Field(50, ge=1)
    # the drug table holding the new drugs' names and EDI codes; None: data.manifest_dir's
    drugs: OptionalConfigPath = None


class TritonConfig(Section):
    repository: ConfigPath = "triton_models"
    model_version: str = "1"
    http_port: int = Field(8100, ge=1, le=65535)
    grpc_port: int = Field(8101, ge=1, le=65535)
    metrics_port: int = Field(8102, ge=1, le=65535)
    classifier_max_batch: int = Field(32, ge=1)
    detector_max_batch: int = Field(8, ge=1)
    max_queue_delay_us: int = Field(2000, ge=0)
    instances: int = Field(1, ge=1)
    tensorrt_fp16: bool = False
    warmup: bool = True
    cpu_threads: int = Field(0, ge=0)  # ONNX Runtime threads per CPU-config model; 0: its choice
    startup_timeout_s: float = Field(120.0, gt=0.0)
    exit_timeout_s: int = Field(10, ge=0)  # on stop, Triton drains requests and connections
    admin_header: str = "triton-admin-key"  # restricted APIs need this header (TRITON_ADMIN_KEY)
    launcher: Literal["bundled", "docker"] = "bundled"
    # the GPU image: base_image + Pillow + PillSnap's wheel, built once from
    # deploy/triton/Dockerfile (docs/triton.md, "GPU"); started offline by --docker
    docker_image: str = "pillsnap-triton:0.1.0"
    base_image: str = "nvcr.io/nvidia/tritonserver:24.10-py3"
    # python -m pillsnap.serve triton: start a server that died on its own again (same
    # ports; backoff 1 s doubling to 30 s; up 60 s resets the count), at most restart_max
    # times in a row
    restart: Literal["never", "on-failure"] = "on-failure"
    restart_max: int = Field(5, ge=0)

    @field_validator("restart", mode="before")
    @classmethod
    def _no_is_never(cls, value: Any) -> Any:  # YAML reads docker's unquoted `no` as false
        return "never" if value is False or value == "no" else value


class ServeConfig(Section):
    backend: Literal["auto", "embedded", "triton"] = "auto"  # auto: triton if triton_url set
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # None below means: take it from the environment / .env (API_KEY, CORS_ALLOW_ORIGINS,
    # MODEL_PATH, TRITON_URL), else the built-in default.
    api_keys: list[str] | None = None
    cors_allow_origins: list[str] | None = None
    model_path: OptionalConfigPath = None
    triton_url: str | None = None
    health_public: bool = True
    top_k: int = Field(5, ge=1, le=50)
    low_confidence: float = Field(0.5, ge=0.0, le=1.0)
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=1)
    max_batch_images: int = Field(16, ge=1)
    request_timeout_s: float = Field(10.0, gt=0.0)
    # /ready's own deadline: a probe learns of a hung backend in about a second, not after
    # the predict timeout
    ready_timeout_s: float = Field(1.0, gt=0.0)
    threads: int = Field(0, ge=0)  # embedded backend: ONNX Runtime threads (0: its choice)
    # embedded backend: where ONNX Runtime runs the models (pillsnap.infer.device)
    device: Device = "auto"
    # embedded backend: inputs and outputs bound on the device (auto: timed at start on a GPU)
    io_binding: IoBinding = "auto"
    # Admission (serve/admission.py): requests computing at once (0: the backend's choice:
    # embedded, its worker threads, min(4, CPU cores); Triton, its 64 connections) and how
    # many more may wait; past that a request is a 503 overloaded with Retry-After at once.
    max_concurrent: int = Field(0, ge=0, le=1024)
    max_queue: int = Field(8, ge=0, le=10_000)

    @field_validator("io_binding", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: Any) -> Any:  # YAML 1.1 reads unquoted on/off as booleans
        return ("on" if value else "off") if isinstance(value, bool) else value


class MeasurementConfig(Section):
    batch_size: int = Field(1, ge=1)
    warmup_runs: int = Field(20, ge=0)
    runs: int = Field(200, ge=1)


class TargetsConfig(Section):
    single_top1: float = 0.92
    combo_map50: float = 0.85
    # the known pills of combination photos found and named right (boxes alone can pass
    # mAP with the wrong drugs in them)
    combo_identified: float = 0.85
    # unknown drugs (outside the class index): the served score's AUROC, and the shares of
    # unknown pills named with no flag and of known pills flagged unknown
    open_set_auroc: float = 0.95
    unknown_named_max: float = 0.05
    known_flagged_max: float = 0.05
    enrolled_top1: float = 0.90  # drugs enrolled from 5 photos (python -m pillsnap.eval --enroll)
    p95_latency_ms: float = 150.0
    measurement: MeasurementConfig = Field(default_factory=MeasurementConfig)


class PillsnapConfig(Section):
    """The whole config; ``config.yaml`` is this with comments."""

    active_feature_set: FeatureSet = "production"
    run: RunConfig = Field(default_factory=RunConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    pack: PackConfig = Field(default_factory=PackConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    dataloader: DataloaderConfig = Field(default_factory=DataloaderConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    enroll: EnrollConfig = Field(default_factory=EnrollConfig)
    triton: TritonConfig = Field(default_factory=TritonConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)

    @model_validator(mode="after")
    def _features_allowed(self) -> PillsnapConfig:
        from pillsnap.config.features import check_features

        check_features(self)
        return self
