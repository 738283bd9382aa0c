#!/bin/sh
# Fail fast, with one clear line, when the settings' required variables are
# missing; then `exec` the command so it becomes the container's main process
# and receives SIGTERM from `docker stop` directly.
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

exec "$@"
