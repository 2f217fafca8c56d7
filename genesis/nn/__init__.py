"""`genesis.nn`: modules, parameters, layers, losses, initialisation (PyTorch's `torch.nn`).

Layout: `parameter` (Parameter, Buffer), `modules/` (the Module base class,
containers and one file per layer family), `functional/` (every layer and
loss as a function built from genesis primitives), `init` (in-place
initialisers), `utils` (gradient clipping, packed sequences).

Modules only hold parameters and settings; all arithmetic lives in
`genesis.nn.functional`, so eager autograd and a tracing compiler see the
same primitive ops whether a model calls `nn.Linear` or `F.linear`.
"""

from genesis.nn import functional, init, parallel, utils  # noqa: F401
from genesis.nn.modules import *  # noqa: F401,F403
from genesis.nn.modules import Module  # noqa: F401
from genesis.nn.parameter import Buffer, Parameter  # noqa: F401
