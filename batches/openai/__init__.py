"""OpenAI's /v1/batches, served by Django over the tenant's schema (aiaas/asgi.py)."""
