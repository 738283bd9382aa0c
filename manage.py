#!/usr/bin/env python
"""Django's command-line utility. With DATABASE_URL / REDIS_URL unset, the
command runs on the embedded PostgreSQL and Redis under .data/ (started, or
joined when running) and the kept development SECRET_KEY, as `make run` does."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiaas.settings")
    from django.core.management import execute_from_command_line

    from aiaas.launcher import development_environment

    with development_environment() as environ:
        os.environ.update(environ)
        execute_from_command_line(sys.argv)
