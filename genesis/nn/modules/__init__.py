"""The layer classes of `genesis.nn`, one family per module (as in PyTorch's `torch.nn.modules`)."""

from genesis.nn.modules.activation import *  # noqa: F401,F403
from genesis.nn.modules.attention import *  # noqa: F401,F403
from genesis.nn.modules.container import *  # noqa: F401,F403
from genesis.nn.modules.conv import *  # noqa: F401,F403
from genesis.nn.modules.distance import *  # noqa: F401,F403
from genesis.nn.modules.dropout import *  # noqa: F401,F403
from genesis.nn.modules.fold import *  # noqa: F401,F403
from genesis.nn.modules.linear import *  # noqa: F401,F403
from genesis.nn.modules.loss import *  # noqa: F401,F403
from genesis.nn.modules.module import Module  # noqa: F401
from genesis.nn.modules.normalization import *  # noqa: F401,F403
from genesis.nn.modules.padding import *  # noqa: F401,F403
from genesis.nn.modules.pixelshuffle import *  # noqa: F401,F403
from genesis.nn.modules.pooling import *  # noqa: F401,F403
from genesis.nn.modules.rnn import *  # noqa: F401,F403
from genesis.nn.modules.sparse import *  # noqa: F401,F403
from genesis.nn.modules.transformer import *  # noqa: F401,F403
from genesis.nn.modules.upsampling import *  # noqa: F401,F403
