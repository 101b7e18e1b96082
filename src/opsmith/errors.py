"""The exception tree lives in the pure core (`opsmith.domain.errors`); this is its public name."""

from opsmith.domain.errors import *  # noqa: F403
from opsmith.domain.errors import __all__  # noqa: F401
