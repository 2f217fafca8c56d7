"""The functional layer: every user-facing op as a function.

Primitives are bound through `genesis.dispatch.apply`; composites (mean, var,
gelu, softmax, split, tril, ...) are written in primitives so the
compiler sees their parts. `genesis.*` and the Tensor methods re-export these.
"""

from genesis.arguments import normalize_dim, normalize_dims  # noqa: F401
from genesis.creation import arange, full, ones, ones_like, zeros, zeros_like  # noqa: F401,E402
from genesis.functional.counting import *  # noqa: F401,F403
from genesis.functional.einsum import *  # noqa: F401,F403
from genesis.functional.elementwise import *  # noqa: F401,F403
from genesis.functional.elementwise import abs, pow  # noqa: F401  (shadow builtins on purpose)
from genesis.functional.indexing import *  # noqa: F401,F403
from genesis.functional.layout import *  # noqa: F401,F403
from genesis.functional.linalg import *  # noqa: F401,F403
from genesis.functional.matmul import *  # noqa: F401,F403
from genesis.functional.numeric import *  # noqa: F401,F403
from genesis.functional.numeric import round  # noqa: F401  (shadows the builtin on purpose)
from genesis.functional.random_fill import *  # noqa: F401,F403
from genesis.functional.rearrange import *  # noqa: F401,F403
from genesis.functional.reduction import *  # noqa: F401,F403
from genesis.functional.reduction import all, any, max, min, sum  # noqa: F401
from genesis.functional.scan import *  # noqa: F401,F403
from genesis.functional.scatter import *  # noqa: F401,F403
from genesis.functional.shape import *  # noqa: F401,F403
from genesis.functional.softmax import *  # noqa: F401,F403
from genesis.functional.sorting import *  # noqa: F401,F403
from genesis.functional.statistics import *  # noqa: F401,F403
