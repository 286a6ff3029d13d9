"""Enums shared by types and inputs, exposed from the catalog's own."""

from __future__ import annotations

import strawberry

from modelyard.catalog.lineage import Direction, Relation
from modelyard.catalog.models import Task
from modelyard.catalog.ordering import OrderField
from modelyard.catalog.params import ParamKind
from modelyard.catalog.versions import Status

TaskEnum = strawberry.enum(Task, name="Task", description="What a model does; decides how the agent runs it.")
StatusEnum = strawberry.enum(Status, name="VersionStatus", description="PENDING while artifacts upload, READY, ARCHIVED.")
RelationEnum = strawberry.enum(
    Relation,
    name="Relation",
    description="How a version relates to a parent. TRAINED_ON and EVALUATED_ON point at dataset versions.",
)
DirectionEnum = strawberry.enum(Direction, name="LineageDirection", description="UP to ancestors, DOWN to descendants.")
ParamTypeEnum = strawberry.enum(ParamKind, name="ParamType", description="The stored type of a param.")
OrderFieldEnum = strawberry.enum(
    OrderField, name="VersionOrderField",
    description="What versions sort by: CREATED_AT, NUMBER, MODEL_NAME (the full name, namespace/name), or a "
    "METRIC's latest value or a numeric PARAM (with `key`; booleans as 0 and 1).",
)
