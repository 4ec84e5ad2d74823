"""The Graph client: msal auth, retries that honour Retry-After, paging, delta, $batch, concurrency limits.

Every Graph call galsync makes goes through `GraphClient`; nothing else opens HTTP to Graph.
"""

from .auth import StaticToken, TokenProvider
from .batch import BatchRequest, BatchResult
from .client import GraphClient, GraphResponse
from .errors import (
    AuthError,
    BadRequest,
    Conflict,
    DeltaTokenExpired,
    Forbidden,
    GraphError,
    MaybeApplied,
    NotFound,
    PreconditionFailed,
    Throttled,
    TransientError,
    Unauthorized,
)
from .paging import Delta
from .retry import RetryPolicy
from .transport import GraphStats

__all__ = [
    "AuthError",
    "BadRequest",
    "BatchRequest",
    "BatchResult",
    "Conflict",
    "Delta",
    "DeltaTokenExpired",
    "Forbidden",
    "GraphClient",
    "GraphError",
    "GraphResponse",
    "GraphStats",
    "MaybeApplied",
    "NotFound",
    "PreconditionFailed",
    "RetryPolicy",
    "StaticToken",
    "Throttled",
    "TokenProvider",
    "TransientError",
    "Unauthorized",
]
