import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('modelyard', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AliasMoveRow',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('model', fields.ForeignKeyField('modelyard.ModelRow', source_field='model_id', db_constraint=True, to_field='id', related_name='alias_moves', on_delete=OnDelete.CASCADE)),
                ('alias', fields.CharField(max_length=64)),
                ('version', fields.ForeignKeyField('modelyard.VersionRow', source_field='version_id', null=True, db_constraint=True, to_field='id', related_name='alias_moves', on_delete=OnDelete.CASCADE)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('actor', fields.CharField(max_length=128)),
            ],
            options={'table': 'alias_move', 'app': 'modelyard', 'indexes': [Index(fields=['model_id', 'alias', 'at'])], 'pk_attr': 'id', 'table_description': 'Where an alias pointed from `at` on (no version: deleted), for history and time travel.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditEventRow',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('actor', fields.CharField(max_length=128)),
                ('kind', fields.CharField(db_index=True, max_length=32)),
                ('model', fields.CharField(null=True, db_index=True, max_length=129)),
                ('namespace', fields.CharField(default='', max_length=64)),
                ('object_type', fields.CharField(max_length=32)),
                ('object_ref', fields.CharField(max_length=300)),
                ('changes', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'audit_event', 'app': 'modelyard', 'pk_attr': 'id', 'table_description': 'An immutable record of one change: who, what, to which object, before → after, when.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TokenRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('scope', fields.CharField(max_length=8)),
                ('namespace', fields.CharField(null=True, max_length=64)),
                ('secret_hash', fields.CharField(unique=True, max_length=64)),
                ('prefix', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('created_by', fields.CharField(null=True, max_length=128)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'token', 'app': 'modelyard', 'pk_attr': 'id', 'table_description': 'A bearer token: only the SHA-256 of its secret is kept.'},
            bases=['Model'],
        ),
    ]
