import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('modelyard', '0002_tokens_audit_alias_moves')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ArtifactRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('version', fields.ForeignKeyField('modelyard.VersionRow', source_field='version_id', db_constraint=True, to_field='id', related_name='artifacts', on_delete=OnDelete.CASCADE)),
                ('path', fields.CharField(max_length=512)),
                ('digest', fields.CharField(db_index=True, max_length=71)),
                ('size', fields.BigIntField()),
                ('media_type', fields.CharField(max_length=128)),
            ],
            options={'table': 'artifact', 'app': 'modelyard', 'unique_together': (('version', 'path'),), 'pk_attr': 'id', 'table_description': 'A file of a version: its path inside the version and the blob holding its bytes.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BlobRow',
            fields=[
                ('digest', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=71)),
                ('size', fields.BigIntField()),
                ('media_type', fields.CharField(default='application/octet-stream', max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'blob', 'app': 'modelyard', 'pk_attr': 'digest', 'table_description': 'A blob the store holds whole and verified: content-addressed, immutable, shared.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='VersionRow',
            name='onnx',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
