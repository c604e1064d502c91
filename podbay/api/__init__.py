"""The object model: core/v1 types, their JSON form, defaulting and validation."""
from podbay.api.base import now
from podbay.api.models import *  # noqa: F403 - the models are this package's vocabulary
from podbay.api import models as _models

__all__ = ["now"] + [n for n, v in vars(_models).items() if isinstance(v, type) and not n.startswith("_")]
