from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('modelyard', '0005_blob_claims')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='AliasRow',
            index=Index(fields=['version_id']),
        ),
    ]
