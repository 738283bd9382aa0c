"""The usage ledger becomes a table partitioned by month of created_at (docs/decisions/0023).

The rows are copied into the new table in one transaction: monthly partitions
from the oldest month (at most 25 months back: older rows, past the ledger's
retention, go to the default partition) to two months ahead, and a default
partition so that an insert never fails. The primary key becomes
(id, created_at), as PostgreSQL requires; Django keeps `id` as the model's pk.
The request ids of the last seven days are claimed in billing_usagerequestid,
which takes over the unique constraint on request_id.
"""

from django.db import migrations, models

INDEXES = """
CREATE INDEX billing_usageevent_tenant_id_c5b338b9 ON billing_usageevent (tenant_id);
CREATE INDEX billing_usageevent_api_key_id_1f2bdebe ON billing_usageevent (api_key_id);
CREATE INDEX billing_usa_tenant__bcecdb_idx ON billing_usageevent (tenant_id, created_at);
CREATE INDEX billing_usage_unmetered ON billing_usageevent (tenant_id, id)
    WHERE meter_reported_at IS NULL AND meter_error = '';
CREATE INDEX billing_usage_meter_retry ON billing_usageevent (meter_retry_at)
    WHERE meter_reported_at IS NULL AND meter_retry_at IS NOT NULL;
ALTER TABLE billing_usageevent ADD CONSTRAINT billing_usageevent_tenant_id_c5b338b9_fk_tenants_tenant_id
    FOREIGN KEY (tenant_id) REFERENCES tenants_tenant (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE billing_usageevent ADD CONSTRAINT billing_usageevent_api_key_id_1f2bdebe_fk_tenants_apikey_id
    FOREIGN KEY (api_key_id) REFERENCES tenants_apikey (id) DEFERRABLE INITIALLY DEFERRED;
"""

# The old table's indexes are renamed out of the way of the new table's (index
# names are unique in a schema); they go with the old table.
SET_ASIDE = """
ALTER TABLE billing_usageevent RENAME TO billing_usageevent_unpartitioned;
DO $$
DECLARE
    index_name text;
BEGIN
    FOR index_name IN
        SELECT indexrelid::regclass::text FROM pg_index
        WHERE indrelid = 'billing_usageevent_unpartitioned'::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', index_name, left('unpartitioned_' || index_name, 63));
    END LOOP;
END $$;
"""

RESTART_IDS = """
SELECT setval(
    pg_get_serial_sequence('billing_usageevent', 'id'),
    coalesce((SELECT max(id) FROM billing_usageevent), 0) + 1,
    false
);
"""

PARTITION = [
    SET_ASIDE,
    """
CREATE TABLE billing_usageevent (
    LIKE billing_usageevent_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY,
    CONSTRAINT billing_usageevent_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE billing_usageevent_default PARTITION OF billing_usageevent DEFAULT;
DO $$
DECLARE
    this_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    oldest timestamp := (SELECT min(created_at) FROM billing_usageevent_unpartitioned) AT TIME ZONE 'UTC';
    month timestamp := greatest(date_trunc('month', coalesce(oldest, now())), this_month - interval '25 months');
BEGIN
    WHILE month <= this_month + interval '2 months' LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF billing_usageevent FOR VALUES FROM (%L) TO (%L)',
            'billing_usageevent_p' || to_char(month, 'YYYYMM'),
            month AT TIME ZONE 'UTC',
            (month + interval '1 month') AT TIME ZONE 'UTC'
        );
        month := month + interval '1 month';
    END LOOP;
END $$;
INSERT INTO billing_usageevent SELECT * FROM billing_usageevent_unpartitioned;
INSERT INTO billing_usagerequestid (request_id, recorded_at)
    SELECT request_id, created_at FROM billing_usageevent_unpartitioned
    WHERE created_at > now() - interval '7 days'
    ON CONFLICT DO NOTHING;
CREATE INDEX billing_usage_request_id ON billing_usageevent (request_id);
""",
    INDEXES,
    RESTART_IDS,
    "DROP TABLE billing_usageevent_unpartitioned;",
]

UNPARTITION = [
    SET_ASIDE,
    """
CREATE TABLE billing_usageevent (
    LIKE billing_usageevent_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY,
    CONSTRAINT billing_usageevent_pkey PRIMARY KEY (id),
    CONSTRAINT billing_usageevent_request_id_key UNIQUE (request_id)
);
INSERT INTO billing_usageevent SELECT * FROM billing_usageevent_unpartitioned;
CREATE INDEX billing_usageevent_request_id_e35a9b65_like ON billing_usageevent (request_id varchar_pattern_ops);
""",
    INDEXES,
    RESTART_IDS,
    "DROP TABLE billing_usageevent_unpartitioned;",
]


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0011_usage_request_id"),
        ("tenants", "0007_tenant_cors_allowed_origins"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usageevent",
                    name="request_id",
                    field=models.CharField(help_text="Once in the ledger (UsageRequestId).", max_length=128),
                ),
                migrations.AddIndex(
                    model_name="usageevent",
                    index=models.Index(fields=["request_id"], name="billing_usage_request_id"),
                ),
            ],
            database_operations=[migrations.RunSQL(PARTITION, UNPARTITION)],
        ),
    ]
