"""Mutation root: each mutation parses its input and calls one catalog service."""

from __future__ import annotations

import strawberry

from modelyard.catalog import aliases, datasets, lineage, models, versions
from modelyard.graphql.context import Info
from modelyard.graphql.inputs import (
    AddLineageInput,
    CreateModelInput,
    CreateVersionInput,
    DeleteAliasInput,
    LogMetricsInput,
    RegisterDatasetInput,
    SetAliasInput,
    UpdateModelInput,
    UpdateVersionInput,
    tag_dict,
)
from modelyard.graphql.types.dataset import DatasetVersion
from modelyard.graphql.types.model import Alias, Model
from modelyard.graphql.types.version import ModelVersion


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a model. CONFLICT when the name is taken.")
    async def create_model(self, info: Info, input: CreateModelInput) -> Model:
        row = await models.create_model(
            input.name, description=input.description, task=models.Task(input.task),
            tags=tag_dict(input.tags), actor=info.context.actor,
        )
        return Model(row=row)

    @strawberry.mutation(description="Change a model's description, task or tags.")
    async def update_model(self, input: UpdateModelInput) -> Model:
        return Model(row=await models.update_model(input.name, input.changes()))

    @strawberry.mutation(description="Delete a model and its versions. CONFLICT while other models descend from it.")
    async def delete_model(self, name: str) -> Model:
        return Model(row=await models.delete_model(name))

    @strawberry.mutation(description="Create the next version with params, metrics, tags, run and lineage, all or nothing.")
    async def create_version(self, info: Info, input: CreateVersionInput) -> ModelVersion:
        return ModelVersion(row=await versions.create_version(input.spec(), info.context.actor))

    @strawberry.mutation(description="Change a version's description, tags or run info.")
    async def update_version(self, input: UpdateVersionInput) -> ModelVersion:
        return ModelVersion(row=await versions.update_version(input.ref, input.changes()))

    @strawberry.mutation(description="Soft-archive a version. CONFLICT while an alias points at it.")
    async def archive_version(self, ref: str) -> ModelVersion:
        return ModelVersion(row=await versions.archive_version(ref))

    @strawberry.mutation(description="Bring an archived version back to READY.")
    async def restore_version(self, ref: str) -> ModelVersion:
        return ModelVersion(row=await versions.restore_version(ref))

    @strawberry.mutation(description="Append metric values (with optional steps) to a version.")
    async def log_metrics(self, input: LogMetricsInput) -> ModelVersion:
        points = [m.point() for m in input.metrics]
        return ModelVersion(row=await versions.log_metrics(input.ref, points))

    @strawberry.mutation(description="Point an alias at a version, creating or moving it.")
    async def set_alias(self, info: Info, input: SetAliasInput) -> Alias:
        return Alias(row=await aliases.set_alias(input.model, input.alias, input.version, info.context.actor))

    @strawberry.mutation(description="Remove an alias.")
    async def delete_alias(self, input: DeleteAliasInput) -> Alias:
        return Alias(row=await aliases.delete_alias(input.model, input.alias))

    @strawberry.mutation(description="Add a lineage edge to an existing version. CONFLICT on a cycle.")
    async def add_lineage(self, input: AddLineageInput) -> ModelVersion:
        return ModelVersion(row=await lineage.link(input.ref, input.spec()))

    @strawberry.mutation(description="Remove a lineage edge from a version.")
    async def remove_lineage(self, input: AddLineageInput) -> ModelVersion:
        return ModelVersion(row=await lineage.unlink(input.ref, input.spec()))

    @strawberry.mutation(description="Record a dataset version (the dataset is created on first use).")
    async def register_dataset(self, info: Info, input: RegisterDatasetInput) -> DatasetVersion:
        return DatasetVersion(row=await datasets.register_dataset(input.spec(), info.context.actor))
