"""Projections: the runner (checkpoints, shards, dead letters, rebuild) and the read models."""

from .appended import project_appended
from .checkpoints import checkpoint_name, read_model_position, shard_of
from .dead_letters import DeadLetter, DeadLetterNotFound, NotParked, get_dead_letter, list_parked, parked_count
from .rebuild import RebuildInProgress, RebuildResult, rebuild_users
from .refold import RefoldResult, refold_users
from .registry import REGISTRY, get_projection, register_projection
from .runner import (
    DEFAULT_BATCH_SIZE,
    BatchResult,
    HandlerFailed,
    caught_up,
    run_first_batches,
    run_projection,
    run_projections,
)
from .status import ProjectionStatus, projection_status

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "REGISTRY",
    "BatchResult",
    "DeadLetter",
    "DeadLetterNotFound",
    "HandlerFailed",
    "NotParked",
    "ProjectionStatus",
    "RebuildInProgress",
    "RebuildResult",
    "RefoldResult",
    "caught_up",
    "checkpoint_name",
    "get_dead_letter",
    "get_projection",
    "list_parked",
    "parked_count",
    "project_appended",
    "projection_status",
    "read_model_position",
    "rebuild_users",
    "refold_users",
    "register_projection",
    "run_first_batches",
    "run_projection",
    "run_projections",
    "shard_of",
]
