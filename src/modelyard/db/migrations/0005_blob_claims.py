from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('modelyard', '0004_token_expiry')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BlobClaimRow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('digest', fields.CharField(db_index=True, max_length=71)),
                ('namespace', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'blob_claim', 'app': 'modelyard', 'unique_together': (('digest', 'namespace'),), 'pk_attr': 'id', 'table_description': "A namespace proved it holds a blob's bytes by sending them (PUT or an upload): with private"},
            bases=['Model'],
        ),
    ]
