"""How a legacy table becomes streams and events: the mapping, its normalizers, event ids and mapping files."""

from .binding import bind_to_database
from .errors import MappingError
from .files import load_mapping_file, load_mappings, mapping_from_dict
from .ids import (
    ID_NAMESPACE,
    backfill_import_id,
    import_metadata,
    relay_event_id,
    relay_import_id,
    uuid5_text,
)
from .normalizers import (
    NORMALIZERS,
    Normalizer,
    coercer_for_type,
    compose,
    escaped,
    jsonable,
    strip_control,
    timestamp,
)
from .table import (
    DEFAULT_MAPPINGS,
    MAX_CLAIM_VALUE,
    ORIGINALS,
    RESERVED_FIELDS,
    USERS,
    ColumnMap,
    Converter,
    ImportPlan,
    TableMapping,
)

__all__ = [
    "DEFAULT_MAPPINGS",
    "ID_NAMESPACE",
    "MAX_CLAIM_VALUE",
    "NORMALIZERS",
    "ORIGINALS",
    "RESERVED_FIELDS",
    "USERS",
    "ColumnMap",
    "Converter",
    "ImportPlan",
    "MappingError",
    "Normalizer",
    "TableMapping",
    "backfill_import_id",
    "bind_to_database",
    "coercer_for_type",
    "compose",
    "escaped",
    "import_metadata",
    "jsonable",
    "load_mapping_file",
    "load_mappings",
    "mapping_from_dict",
    "relay_event_id",
    "relay_import_id",
    "strip_control",
    "timestamp",
    "uuid5_text",
]
