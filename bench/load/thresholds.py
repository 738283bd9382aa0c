"""The load test's pass/fail thresholds (no Locust import: the test suite reads them)."""

# The 95th percentile each class of request must stay under, in milliseconds.
THRESHOLDS = {
    "chat": 2_000,
    "chat stream": 2_500,
    "embeddings": 1_500,
    "models": 1_000,
    "api keys": 1_500,
    "ws chat": 2_500,
    "dashboard overview": 2_000,
    "dashboard keys": 2_000,
    "dashboard usage": 2_000,
}
MAX_ERROR_RATE = 0.01
