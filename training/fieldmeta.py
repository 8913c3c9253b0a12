"""What a spec field means to a person: label, help, unit, range, fieldset and when it applies.

The definitions live in the ``fitboard-model`` package (:mod:`fitboard_model.fieldmeta`), so a
plugin's config dataclass declares its fields with the very same metadata without depending on
Fitboard itself; this module is the engine's name for them.
"""

from fitboard_model.fieldmeta import FieldMeta, field_meta, is_numeric, meta, range_problems

__all__ = ["FieldMeta", "field_meta", "is_numeric", "meta", "range_problems"]
