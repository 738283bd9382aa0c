"""What operators see of the platform: metrics (metrics.py, exposition.py)."""
