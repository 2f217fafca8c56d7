"""torchvision's ResNet-18, trained with SGD as in its ImageNet recipe, against PyTorch.

The structure of torchvision.models.resnet18: a 7x7 stride-2 stem with
BatchNorm, in-place ReLU and a 3x3 stride-2 max-pool; four stages of two
BasicBlocks (3x3 convolutions, BatchNorm, `out += identity`), the first of
stages 2-4 with stride 2 and a 1x1-convolution downsample; adaptive average
pooling to 1x1 and a linear classifier; torchvision's initialisation. The
widths are an eighth of torchvision's (8 to 64 channels) and the images
32x32, so a step of a batch of 8 takes tens of milliseconds (a batch of 4 leaves the last
stage's BatchNorm 4 values a channel, and float32 rounding then grows tenfold a step). SGD with
momentum 0.9 and weight decay 1e-4, cross-entropy.
"""

import numpy as np
import pytest
import torch
from twins import as_pair, assert_states_close, copy_torch_state, step_function

import genesis

WIDTHS, CLASSES, BATCH, STEPS, LR = (8, 16, 32, 64), 10, 8, 4, 0.01


def make_resnet18(nn):
    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += identity
            return self.relu(out)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = WIDTHS[0]
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(WIDTHS[0], stride=1)
            self.layer2 = self._make_layer(WIDTHS[1], stride=2)
            self.layer3 = self._make_layer(WIDTHS[2], stride=2)
            self.layer4 = self._make_layer(WIDTHS[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(WIDTHS[3], CLASSES)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

        def _make_layer(self, planes, stride):
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )
            first = BasicBlock(self.inplanes, planes, stride, downsample)
            self.inplanes = planes
            return nn.Sequential(first, BasicBlock(planes, planes))

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.avgpool(x)
            return self.fc(x.reshape(x.size(0), -1))

    return ResNet18()


def training_step(lib, model):
    criterion = lib.nn.CrossEntropyLoss()
    optimizer = lib.optim.SGD(model.parameters(), LR, momentum=0.9, weight_decay=1e-4)

    def step(images, target):
        loss = criterion(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step


def batches():
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        yield rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32), rng.integers(0, CLASSES, BATCH)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_resnet18_trains_as_in_pytorch(mode):
    torch.manual_seed(0)
    t_model, g_model = make_resnet18(torch.nn), make_resnet18(genesis.nn)
    copy_torch_state(g_model, t_model)
    # compiled by the numpy backend: the C backend's compiler takes 10 s for the 379 kernels of each of
    # the two programs (before and after SGD's momentum buffers exist), and the C backend is held to
    # eager by the VAE, the DCGAN and tests/test_compile_training.py
    t_step = training_step(torch, t_model)
    g_step = step_function(mode, training_step(genesis, g_model), backend="numpy")
    for i, (images, target) in enumerate(batches()):
        (g_x, t_x), (g_y, t_y) = as_pair(images), as_pair(target)
        expected, got = t_step(t_x, t_y).item(), g_step(g_x, g_y).item()
        # 20 float32 layers, each summing up to 576 products in another order than PyTorch's, and the
        # parameters of each step moved by gradients with those differences in them
        assert got == pytest.approx(expected, rel=2e-5), f"step {i}"
    assert_states_close(g_model, t_model, rtol=1e-3, atol=1e-5)
    if mode == "compiled":
        assert g_step.stats["fallbacks"] == []
