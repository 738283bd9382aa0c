"""Each agents.Prompt version becomes a draft prompt entry of the registry, in
the same tenant schema, with the same name and version (unsigned: a signing key
signs new versions only)."""

from django.db import migrations
from jinja2 import TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment


def variables_of(template):
    try:
        return sorted(meta.find_undeclared_variables(ImmutableSandboxedEnvironment().parse(template)))
    except TemplateError:
        return []


def copy_prompts(apps, schema_editor):
    Prompt = apps.get_model("agents", "Prompt")
    Entry = apps.get_model("registry", "Entry")
    AuditEvent = apps.get_model("registry", "AuditEvent")
    for prompt in Prompt.objects.order_by("name", "version"):
        manifest = {
            "name": prompt.name,
            "template": prompt.template,
            "variables": variables_of(prompt.template),
        }
        entry = Entry.objects.create(
            kind="prompt", name=prompt.name, version=prompt.version, manifest=manifest, state="draft"
        )
        Entry.objects.filter(pk=entry.pk).update(created_at=prompt.created_at)
        AuditEvent.objects.create(entry=entry, action="imported", to_state="draft", actor="migration")


def copy_entries_back(apps, schema_editor):
    Prompt = apps.get_model("agents", "Prompt")
    Entry = apps.get_model("registry", "Entry")
    for entry in Entry.objects.filter(kind="prompt"):
        Prompt.objects.create(name=entry.name, version=entry.version, template=entry.manifest["template"])


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial"), ("registry", "0001_initial")]
    operations = [migrations.RunPython(copy_prompts, copy_entries_back)]
