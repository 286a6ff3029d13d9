import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='DatasetRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('full_name', fields.CharField(unique=True, max_length=129)),
                ('description', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('created_by', fields.CharField(null=True, max_length=128)),
            ],
            options={'table': 'dataset', 'app': 'modelyard', 'pk_attr': 'id', 'table_description': 'A dataset: a named series of dataset versions.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DatasetVersionRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('dataset', fields.ForeignKeyField('modelyard.DatasetRow', source_field='dataset_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('version', fields.CharField(max_length=64)),
                ('uri', fields.CharField(default='', max_length=2048)),
                ('digest', fields.CharField(null=True, max_length=71)),
                ('size', fields.BigIntField(null=True)),
                ('description', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('created_by', fields.CharField(null=True, max_length=128)),
            ],
            options={'table': 'dataset_version', 'app': 'modelyard', 'unique_together': (('dataset', 'version'),), 'pk_attr': 'id', 'table_description': 'One version of a dataset, named by its owner (`2024-06`, `v3`).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModelRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('namespace', fields.CharField(default='', max_length=64)),
                ('name', fields.CharField(max_length=64)),
                ('full_name', fields.CharField(unique=True, max_length=129)),
                ('description', fields.TextField(default='', unique=False)),
                ('task', fields.CharField(default='other', max_length=32)),
                ('tags', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('version_seq', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('created_by', fields.CharField(null=True, max_length=128)),
            ],
            options={'table': 'model', 'app': 'modelyard', 'indexes': [Index(fields=['namespace', 'name'])], 'pk_attr': 'id', 'table_description': 'A model: a named series of versions.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VersionRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('model', fields.ForeignKeyField('modelyard.ModelRow', source_field='model_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField()),
                ('description', fields.TextField(default='', unique=False)),
                ('status', fields.CharField(default='READY', db_index=True, max_length=16)),
                ('manifest_digest', fields.CharField(db_index=True, max_length=71)),
                ('run', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('created_by', fields.CharField(null=True, max_length=128)),
            ],
            options={'table': 'model_version', 'app': 'modelyard', 'unique_together': (('model', 'number'),), 'pk_attr': 'id', 'table_description': 'One numbered version of a model.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AliasRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('model', fields.ForeignKeyField('modelyard.ModelRow', source_field='model_id', db_constraint=True, to_field='id', related_name='aliases', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=64)),
                ('version', fields.ForeignKeyField('modelyard.VersionRow', source_field='version_id', db_constraint=True, to_field='id', related_name='aliases', on_delete=OnDelete.CASCADE)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('updated_by', fields.CharField(null=True, max_length=128)),
            ],
            options={'table': 'alias', 'app': 'modelyard', 'unique_together': (('model', 'name'),), 'pk_attr': 'id', 'table_description': 'A movable name pointing at one version of a model.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LineageEdgeRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('child', fields.ForeignKeyField('modelyard.VersionRow', source_field='child_id', db_constraint=True, to_field='id', related_name='parent_edges', on_delete=OnDelete.CASCADE)),
                ('parent_version', fields.ForeignKeyField('modelyard.VersionRow', source_field='parent_version_id', null=True, db_constraint=True, to_field='id', related_name='child_edges', on_delete=OnDelete.RESTRICT)),
                ('parent_dataset', fields.ForeignKeyField('modelyard.DatasetVersionRow', source_field='parent_dataset_id', null=True, db_constraint=True, to_field='id', related_name='child_edges', on_delete=OnDelete.RESTRICT)),
                ('relation', fields.CharField(max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'lineage_edge', 'app': 'modelyard', 'indexes': [Index(fields=['child_id']), Index(fields=['parent_version_id']), Index(fields=['parent_dataset_id'])], 'pk_attr': 'id', 'table_description': 'child version → parent (a model version or a dataset version), with a relation.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MetricPointRow',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('version', fields.ForeignKeyField('modelyard.VersionRow', source_field='version_id', db_constraint=True, to_field='id', related_name='metric_points', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(max_length=128)),
                ('value', fields.FloatField()),
                ('step', fields.BigIntField(null=True)),
                ('logged_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'metric_point', 'app': 'modelyard', 'indexes': [Index(fields=['version_id', 'key'])], 'pk_attr': 'id', 'table_description': 'Every logged value of a metric, for its history.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MetricRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('version', fields.ForeignKeyField('modelyard.VersionRow', source_field='version_id', db_constraint=True, to_field='id', related_name='metrics', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(max_length=128)),
                ('value', fields.FloatField()),
                ('step', fields.BigIntField(null=True)),
                ('logged_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'metric', 'app': 'modelyard', 'unique_together': (('version', 'key'),), 'indexes': [Index(fields=['key', 'value'])], 'pk_attr': 'id', 'table_description': 'The latest value of a metric of a version (what filters and ordering compare).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ParamRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('version', fields.ForeignKeyField('modelyard.VersionRow', source_field='version_id', db_constraint=True, to_field='id', related_name='params', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(max_length=128)),
                ('kind', fields.CharField(max_length=8)),
                ('num_value', fields.FloatField(null=True)),
                ('text_value', fields.CharField(null=True, max_length=512)),
                ('value_json', fields.TextField(unique=False)),
            ],
            options={'table': 'param', 'app': 'modelyard', 'unique_together': (('version', 'key'),), 'indexes': [Index(fields=['key', 'num_value']), Index(fields=['key', 'text_value'])], 'pk_attr': 'id', 'table_description': 'A typed param: numbers (and bools) compare in `num_value`, strings in `text_value`.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VersionTagRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('version', fields.ForeignKeyField('modelyard.VersionRow', source_field='version_id', db_constraint=True, to_field='id', related_name='tags', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(max_length=128)),
                ('value', fields.CharField(max_length=512)),
            ],
            options={'table': 'version_tag', 'app': 'modelyard', 'unique_together': (('version', 'key'),), 'indexes': [Index(fields=['key', 'value'])], 'pk_attr': 'id', 'table_description': 'A key → value tag of a version.'},
            bases=['Model'],
        ),
    ]
