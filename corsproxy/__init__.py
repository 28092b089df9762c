"""corsproxy: a local CORS dev proxy."""

__version__ = "0.1.0"
