"""Every metric, tag and artifact name resbench writes to MLflow, in one place."""

DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow's embedded default, in the working directory
DEFAULT_EXPERIMENT = "resbench"

# Per-epoch curves, logged with step = epoch (0-based). test_loss is the mean per test image;
# test_loss_batchmean the authors' definition, what the paper printed: each test batch's mean
# loss averaged over batches (their last batch holds 16 images).
TEST_LOSS_BATCHMEAN = "test_loss_batchmean"
EPOCH_METRICS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "epoch_seconds",
    "images_per_second",
    TEST_LOSS_BATCHMEAN,
)
# One value per run.
PARAM_COUNT = "param_count"
TEST_ACCURACY = "test_accuracy"  # test accuracy at the last epoch (paper/final's figure)
BEST_TEST_ACCURACY = "best_test_accuracy"  # the highest over the epochs (Table 1's figures)
TEST_LOSS = "test_loss_final"
TEST_LOSS_BATCHMEAN_FINAL = "test_loss_batchmean_final"  # the authors' definition at the last epoch
WALL_SECONDS = "wall_seconds"

TAG_ENTRY = "resbench.entry"
TAG_GROUP = "resbench.group"
TAG_SEED = "resbench.seed"
TAG_KIND = "resbench.kind"  # "train" or "speed"
TAG_CONFIG_HASH = "resbench.config_hash"  # hash of the model and training configs actually run
TAG_ENTRY_HASH = "resbench.entry_hash"  # hash of the entry's own configs
TAG_OVERRIDES = (
    "resbench.overrides"  # comma-separated fields that differ from the entry ("" = none)
)
TAG_DATA_SOURCE = (
    "resbench.data_source"  # cifar10 | cifar10-jpeg-rebuild | cifar10-unverified | synthetic
)
TAG_DATA_CHECKSUM = "resbench.data_checksum"
TAG_FAILURE = "resbench.failure"  # why a FAILED run failed, one line
TAG_DIVERGED_EPOCH = "resbench.diverged_epoch"
TAG_SUPERSEDED_BY = (
    "resbench.superseded_by"  # on a KILLED run another machine replaced: that run's id
)
# A run's curve judged from its K-th epoch on (benchmarks/collapse.py): "true" | "false", its
# shape (took-off, slow-start, never-took-off, fell-to-chance) and the epochs it was judged on
TAG_COLLAPSED = "resbench.collapsed"
TAG_COLLAPSE_SHAPE = "resbench.collapse_shape"
TAG_COLLAPSE_EPOCHS = "resbench.collapse_epochs"
TAG_GIT_COMMIT = "resbench.git_commit"
TAG_GIT_DIRTY = "resbench.git_dirty"
TAG_TORCH = "resbench.torch"
TAG_CUDA = "resbench.cuda"
TAG_DEVICE = "resbench.device"
TAG_IDENTITY = "resbench.identity"  # hash of the run key (benchmarks/runkey.py)
# The execution mode that changes a run's numbers, as it ran (part of the run key):
TAG_PRECISION = "resbench.precision"  # what --precision resolved to: bf16, tf32 or fp32
TAG_PIPELINE = "resbench.pipeline"  # fast | reference
TAG_COMPILE = "resbench.compile"  # off | cudagraph | inductor | a torch.compile mode
TAG_ENTRY_VERSION = "resbench.entry_version"  # the entry's code version (bumped by its author)
TAG_TF32 = "resbench.tf32"  # "on" where float32 convolutions and matmuls may use TensorFloat-32
TAG_COMPILE_FALLBACK = "resbench.compile_fallback"  # why a --compile run's steps turned eager
# The machine and software a run ran on, for the report's reproducibility cards.
TAG_GPU_DRIVER = "resbench.gpu_driver"  # NVIDIA driver version ("none" without a GPU)
TAG_GPU_COUNT = "resbench.gpu_count"  # GPUs visible to the run
TAG_CUDNN = "resbench.cudnn"
TAG_CPU = "resbench.cpu"  # CPU model name
TAG_PYTHON = "resbench.python"
TAG_TORCHVISION = "resbench.torchvision"
TAG_MLFLOW = "resbench.mlflow"
TAG_PLATFORM = "resbench.platform"  # operating system
TAG_PAPER_ACCURACY = "paper.accuracy"
TAG_PAPER_PARAMS = "paper.params"
TAG_PAPER_EPOCHS = "paper.epochs"
TAG_PAPER_TEST_LOSS = "paper.test_loss"
TAG_DESCRIPTION = "mlflow.note.content"  # shown as the run's description in the UI

# MLflow's own conventions, which its UI reads (tracking/conventions.py fills them in).
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # a click on the experiment opens its training runs
TAG_SOURCE_NAME = "mlflow.source.name"  # the runs table's Source column, with the commit
TAG_SOURCE_TYPE = "mlflow.source.type"
TAG_SOURCE_COMMIT = "mlflow.source.git.commit"
TAG_SOURCE_REPO = "mlflow.source.git.repoURL"  # where there is one; the commit then links to it
SOURCE_TYPE = "LOCAL"  # MLflow's SourceType for code run from a checkout
TAG_DATASET_CONTEXT = "mlflow.data.context"  # on each dataset input
CONTEXT_TRAINING = "training"
CONTEXT_EVALUATION = "evaluation"
MODEL_NAME = "model"  # the logged model (no run artifact shares its name): models:/<model_id>
SYSTEM_METRICS_PREFIX = (
    "system/"  # MLflow's system-metrics monitor, e.g. system/cpu_utilization_percentage
)

ARTIFACT_CONFIG = "config.json"
ARTIFACT_CURVE = "learning_curve.png"
ARTIFACT_CHECKPOINT = (
    "checkpoint/state.pt"  # the latest epoch's state while a run trains (jobs/checkpoints.py)
)

# Speed runs (`resbench speed`, tag resbench.kind = KIND_SPEED): one run per measurement,
# one value per pipeline named "<pipeline>.<metric>", e.g. "fast.train_images_per_second".
KIND_SPEED = "speed"
SPEED_METRICS = (
    "train_images_per_second",
    "ms_per_step",
    "test_images_per_second",
    "train_tflops",
    "run_seconds_estimate",
)
SPEEDUP_TRAIN = "speedup_train"  # fast / reference training images per second
SPEEDUP_TEST = "speedup_test"  # fast / reference test images per second
FLOPS_FORWARD = "flops_per_image_forward"  # torch.utils.flop_counter, per 32x32 image
FLOPS_TRAIN = "flops_per_image_train"  # forward + backward per image
ARTIFACT_SPEED_TABLE = "speed.csv"
