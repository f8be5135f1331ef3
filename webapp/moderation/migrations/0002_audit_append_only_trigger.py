"""The audit log is append-only in the database too: on PostgreSQL a trigger refuses every
UPDATE and DELETE of moderation_auditentry, whoever sends it (a shell, a script, a bug that
bypasses the model). SQLite (the embedded default) relies on the model's own refusal.

TRUNCATE is left alone: it is a maintenance operation (and how test runs empty their tables)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION moderation_auditentry_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'moderation_auditentry is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER moderation_auditentry_append_only
    BEFORE UPDATE OR DELETE ON moderation_auditentry
    FOR EACH ROW EXECUTE FUNCTION moderation_auditentry_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS moderation_auditentry_append_only ON moderation_auditentry;
DROP FUNCTION IF EXISTS moderation_auditentry_refuse_change();
"""


def create_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # None: its % are not placeholders


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
