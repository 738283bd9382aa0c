-- Runs once, when the postgres volume is first initialised. pgvector in the
-- app database, and in template1 so databases created later (a test database)
-- have it too; the same as aiaas/embedded.py does for the embedded server.
CREATE EXTENSION IF NOT EXISTS vector;
\connect template1
CREATE EXTENSION IF NOT EXISTS vector;
