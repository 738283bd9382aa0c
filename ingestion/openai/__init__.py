"""/v1/files and /v1/vector_stores: OpenAI's Files and Vector Stores APIs over the
tenant's stored files and collections, shaped so the stock `openai` SDK works
unchanged (docs/decisions/0020). A transport, like an app's api/: it validates,
delegates to ingestion's services and search, and renders OpenAI's objects."""
