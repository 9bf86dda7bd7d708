"""How a legacy table becomes streams and events: the mapping as declared, as compiled for use (`bind`),
its normalizers, event ids and mapping files."""

from .binding import Binding, reflect
from .compiled import MAX_CLAIM_VALUE, ORIGINALS, CompiledMapping, Converter, ImportPlan
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
from .table import DEFAULT_MAPPINGS, RESERVED_FIELDS, USERS, ColumnMap, TableMapping, bound

__all__ = [
    "DEFAULT_MAPPINGS",
    "ID_NAMESPACE",
    "MAX_CLAIM_VALUE",
    "NORMALIZERS",
    "ORIGINALS",
    "RESERVED_FIELDS",
    "USERS",
    "Binding",
    "ColumnMap",
    "CompiledMapping",
    "Converter",
    "ImportPlan",
    "MappingError",
    "Normalizer",
    "TableMapping",
    "backfill_import_id",
    "bound",
    "coercer_for_type",
    "compose",
    "escaped",
    "import_metadata",
    "jsonable",
    "load_mapping_file",
    "load_mappings",
    "mapping_from_dict",
    "reflect",
    "relay_event_id",
    "relay_import_id",
    "strip_control",
    "timestamp",
    "uuid5_text",
]
