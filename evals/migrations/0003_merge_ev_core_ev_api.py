"""Joins ev-core's and ev-api's migrations on this branch; the lead renumbers them at merge."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("evals", "0002_ev_api_nightly"),
        ("evals", "0002_ev_core_agent_case_run"),
    ]

    operations = []
