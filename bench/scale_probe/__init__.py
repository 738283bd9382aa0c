"""A tenant app for bench/tenants.py only: one table, and a second migration
adding a column, the migration timed across every tenant schema.

bench/tenant_settings.py installs it; BENCH_PROBE_STEP picks the migrations
package: step1 (the table) while tenants are provisioned, step2 and step3 (each
one more column) for the timed runs.
"""
