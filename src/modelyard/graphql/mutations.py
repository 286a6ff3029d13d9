"""Mutation root: each mutation checks permission, parses its input and calls one catalog service."""

from __future__ import annotations

from functools import partial

import strawberry
from strawberry.permission import BasePermission

from modelyard.catalog import (
    aliases,
    datasets,
    lineage,
    models,
    policy,
    signatures,
    tokens,
    versions,
)
from modelyard.graphql.context import Info
from modelyard.graphql.inputs import (
    AddLineageInput,
    CreateModelInput,
    CreateTokenInput,
    CreateVersionInput,
    DeleteAliasInput,
    LogMetricsInput,
    RegisterDatasetInput,
    SetAliasInput,
    UpdateModelInput,
    UpdateVersionInput,
    tag_dict,
)
from modelyard.graphql.permissions import CanWrite, IsAdmin
from modelyard.graphql.types.audit import CreatedToken, Token
from modelyard.graphql.types.dataset import DatasetVersion
from modelyard.graphql.types.model import Alias, Model
from modelyard.graphql.types.version import ModelVersion

WRITE: list[type[BasePermission]] = [CanWrite]
ADMIN: list[type[BasePermission]] = [IsAdmin]


@strawberry.type(
    description="Every result is nullable: in a request of several mutations, one that fails is null "
    "with its error in `errors`, while those before and after it that committed keep their results "
    "in `data`."
)
class Mutation:
    @strawberry.mutation(permission_classes=WRITE, description="Create a model. CONFLICT when the name is taken.")
    async def create_model(self, info: Info, input: CreateModelInput) -> Model | None:
        row = await models.create_model(
            input.name, description=input.description, task=models.Task(input.task),
            tags=tag_dict(input.tags), actor=info.context.actor,
        )
        return Model(row=row)

    @strawberry.mutation(permission_classes=WRITE, description="Change a model's description, task or tags.")
    async def update_model(self, info: Info, input: UpdateModelInput) -> Model | None:
        return Model(row=await models.update_model(input.name, input.changes(), actor=info.context.actor))

    @strawberry.mutation(
        permission_classes=ADMIN,
        description="Delete a model and its versions (admin). CONFLICT while other models descend from it.",
    )
    async def delete_model(self, info: Info, name: str) -> Model | None:
        return Model(row=await models.delete_model(name, actor=info.context.actor))

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Create the next version with params, metrics, tags, run and lineage, all or nothing.",
    )
    async def create_version(self, info: Info, input: CreateVersionInput) -> ModelVersion | None:
        store = info.context.store
        inspect = partial(signatures.inspect_onnx, store) if store is not None else None
        reader = policy.read_namespace(info.context.caller, info.context.settings.public_read)
        row = await versions.create_version(input.spec(), actor=info.context.actor, inspect=inspect,
                                            namespace=reader)
        info.context.loaders.prime_model(row.model)
        return ModelVersion(row=row)

    @strawberry.mutation(
        permission_classes=WRITE,
        description=f"Create many versions in one transaction, at most {versions.MAX_BATCH}, in the "
        "order given, each as `createVersion` would (numbers, lineage checks, events): a later one may "
        "name an earlier one as a lineage parent (`m:3`). All or nothing: an error names the item "
        "(`createVersions item 3: …`) and nothing of the batch remains.",
    )
    async def create_versions(self, info: Info, input: list[CreateVersionInput]) -> list[ModelVersion] | None:
        versions.check_batch(len(input))
        specs = []
        for i, item in enumerate(input):
            with versions.batch_item(i):
                specs.append(item.spec())
        store = info.context.store
        inspect = partial(signatures.inspect_onnx, store) if store is not None else None
        reader = policy.read_namespace(info.context.caller, info.context.settings.public_read)
        rows = await versions.create_versions(specs, actor=info.context.actor, inspect=inspect,
                                              namespace=reader)
        for row in rows:
            info.context.loaders.prime_model(row.model)
        return [ModelVersion(row=row) for row in rows]

    @strawberry.mutation(permission_classes=WRITE, description="Change a version's description, tags or run info.")
    async def update_version(self, info: Info, input: UpdateVersionInput) -> ModelVersion | None:
        return ModelVersion(row=await versions.update_version(input.ref, input.changes(), actor=info.context.actor))

    @strawberry.mutation(permission_classes=WRITE, description="Soft-archive a version. CONFLICT while an alias points at it.")
    async def archive_version(self, info: Info, ref: str) -> ModelVersion | None:
        return ModelVersion(row=await versions.archive_version(ref, actor=info.context.actor))

    @strawberry.mutation(permission_classes=WRITE, description="Bring an archived version back to READY.")
    async def restore_version(self, info: Info, ref: str) -> ModelVersion | None:
        return ModelVersion(row=await versions.restore_version(ref, actor=info.context.actor))

    @strawberry.mutation(permission_classes=WRITE, description="Append metric values (with optional steps) to a version.")
    async def log_metrics(self, info: Info, input: LogMetricsInput) -> ModelVersion | None:
        points = [m.point() for m in input.metrics]
        return ModelVersion(row=await versions.log_metrics(input.ref, points, actor=info.context.actor))

    @strawberry.mutation(permission_classes=WRITE, description="Point an alias at a version, creating or moving it.")
    async def set_alias(self, info: Info, input: SetAliasInput) -> Alias | None:
        row = await aliases.set_alias(input.model, input.alias, input.version, actor=info.context.actor)
        return Alias.of(row)

    @strawberry.mutation(permission_classes=WRITE, description="Remove an alias.")
    async def delete_alias(self, info: Info, input: DeleteAliasInput) -> Alias | None:
        return Alias.of(await aliases.delete_alias(input.model, input.alias, actor=info.context.actor))

    @strawberry.mutation(permission_classes=WRITE, description="Add a lineage edge to an existing version. CONFLICT on a cycle.")
    async def add_lineage(self, info: Info, input: AddLineageInput) -> ModelVersion | None:
        return ModelVersion(row=await lineage.link(input.ref, input.spec(), actor=info.context.actor))

    @strawberry.mutation(permission_classes=WRITE, description="Remove a lineage edge from a version.")
    async def remove_lineage(self, info: Info, input: AddLineageInput) -> ModelVersion | None:
        return ModelVersion(row=await lineage.unlink(input.ref, input.spec(), actor=info.context.actor))

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Record a dataset version (the dataset is created on first use).",
    )
    async def register_dataset(self, info: Info, input: RegisterDatasetInput) -> DatasetVersion | None:
        return DatasetVersion(row=await datasets.register_dataset(input.spec(), actor=info.context.actor))

    @strawberry.mutation(permission_classes=ADMIN, description="Create a token (admin). Its secret is returned this once.")
    async def create_token(self, info: Info, input: CreateTokenInput) -> CreatedToken | None:
        secret, row = await tokens.create_token(
            input.name, tokens.Scope(input.scope), input.namespace, actor=info.context.actor,
            expires_at=input.expires_at,
        )
        return CreatedToken(secret=secret, token=Token(row=row))

    @strawberry.mutation(permission_classes=ADMIN, description="Revoke a token (admin); it stops working at once.")
    async def revoke_token(self, info: Info, name: str) -> Token | None:
        return Token(row=await tokens.revoke_token(name, actor=info.context.actor))
