"""The async API client: the only way loops and the CLI reach the API server."""
from podbay.client.client import DEFAULT_SERVER, Client

__all__ = ["Client", "DEFAULT_SERVER"]
