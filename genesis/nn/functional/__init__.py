"""`genesis.nn.functional`: layers and losses as functions (PyTorch's `torch.nn.functional`).

Every function here is a composite of genesis primitives (matmul, exp, amax,
gather, pad, strided slicing, ...): none has a kernel or a backward rule of
its own, so eager autograd differentiates them through their parts and a
compiler traces and fuses the same parts. The modules in `genesis.nn` hold
parameters and call these.
"""

from genesis.nn.functional.activation import (  # noqa: F401
    celu,
    elu,
    gelu,
    glu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    mish,
    prelu,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softmin,
    softplus,
    softsign,
    tanh,
    tanhshrink,
    threshold,
)
from genesis.nn.functional.attention import multi_head_attention_forward, scaled_dot_product_attention  # noqa: F401
from genesis.nn.functional.basic import (  # noqa: F401
    bilinear,
    channel_shuffle,
    cosine_similarity,
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    embedding,
    linear,
    local_response_norm,
    normalize,
    one_hot,
    pad,
    pairwise_distance,
    pixel_shuffle,
    pixel_unshuffle,
)
from genesis.nn.functional.conv import (  # noqa: F401
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    fold,
    unfold,
)
from genesis.nn.functional.ctc import ctc_loss  # noqa: F401
from genesis.nn.functional.embedding_bag import embedding_bag  # noqa: F401
from genesis.nn.functional.grid_sample import affine_grid, grid_sample  # noqa: F401
from genesis.nn.functional.interpolate import interpolate, upsample  # noqa: F401
from genesis.nn.functional.loss import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    gaussian_nll_loss,
    hinge_embedding_loss,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    nll_loss,
    poisson_nll_loss,
    smooth_l1_loss,
    soft_margin_loss,
    triplet_margin_loss,
)
from genesis.nn.functional.multiclass_loss import (  # noqa: F401
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
)
from genesis.nn.functional.normalization import (  # noqa: F401
    batch_norm,
    group_norm,
    instance_norm,
    layer_norm,
    rms_norm,
)
from genesis.nn.functional.pooling import (  # noqa: F401
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from genesis.nn.functional.random_activation import gumbel_softmax, rrelu  # noqa: F401
