#!/bin/sh
# Fail fast, with one clear line, when the settings' required variables are
# missing; make the writable folders; then `exec` the command so it becomes the
# container's main process and receives SIGTERM from `docker stop` directly.
set -eu

missing=""
for name in SECRET_KEY DATABASE_URL REDIS_URL; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        missing="$missing $name"
    fi
done
if [ -n "$missing" ]; then
    echo "aiaas-entrypoint: set$missing (see docker/README.md)" >&2
    exit 64
fi

# The folders the app writes to (the image's ENV), made on the writable volume mounted
# over /var/lib/aiaas; the metrics' folder emptied, since values of an earlier start's
# processes must not add up (docs/observability.md).
for folder in "${USAGE_SPOOL_DIR:-}" "${FILES_ROOT:-}" "${PROMETHEUS_MULTIPROC_DIR:-}"; do
    if [ -n "$folder" ]; then
        mkdir -p "$folder"
    fi
done
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -type f -delete
fi

exec "$@"
