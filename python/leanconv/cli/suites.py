"""Built-in benchmark suites: the distinct convolution layers of real networks.

Each suite lists the conv layers of the network at its standard input size
(224x224 for the ImageNet networks, 32x32 for CIFAR), merged by shape, with
`count` = how many times that shape occurs in one forward pass, so totals
weighted by count are the network's whole convolution time.  Names say where
a shape first occurs.

Sources (layer structure, not code): torchvision's ResNet (v1.5: the stride
sits on the 3x3 conv of a bottleneck), VGG-16 (configuration D), MobileNetV2
(Sandler et al. 2018, width 1.0), and He et al. 2016 section 4.2 for the
CIFAR ResNet-20 (option A shortcuts: identity with zero padding, no 1x1 conv).
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Layer:
    name: str
    C: int
    H: int
    W: int
    M: int
    kH: int
    kW: int
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    groups: int = 1
    N: int = 1
    count: int = 1

    @property
    def out_hw(self):
        eh = self.dilation * (self.kH - 1) + 1
        ew = self.dilation * (self.kW - 1) + 1
        return ((self.H + 2 * self.pad - eh) // self.stride + 1,
                (self.W + 2 * self.pad - ew) // self.stride + 1)

    @property
    def flops(self) -> int:
        """2 * multiply-adds of one call: 2*N*M*OH*OW*(C/groups)*kH*kW."""
        OH, OW = self.out_hw
        return 2 * self.N * self.M * OH * OW * (self.C // self.groups) * self.kH * self.kW

    @property
    def x_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def w_shape(self):
        return (self.M, self.C // self.groups, self.kH, self.kW)

    @property
    def shape_text(self) -> str:
        """Compact description, e.g. '64x56x56 > 128 k3 s2 p1'."""
        k = f"k{self.kH}" if self.kH == self.kW else f"k{self.kH}x{self.kW}"
        extra = "".join([f" s{self.stride}" if self.stride != 1 else "",
                         f" p{self.pad}" if self.pad else "",
                         f" d{self.dilation}" if self.dilation != 1 else "",
                         " dw" if self.groups == self.C and self.groups > 1 else
                         (f" g{self.groups}" if self.groups != 1 else "")])
        n = f"{self.N}x" if self.N != 1 else ""
        return f"{n}{self.C}x{self.H}x{self.W} > {self.M} {k}{extra}"

    def with_batch(self, N):
        return replace(self, N=N)


def _conv(name, C, H, M, k, stride=1, count=1, groups=1):
    """A square layer with 'same'-style padding k//2, as all these networks use."""
    return Layer(name, C, H, H, M, k, k, stride=stride, pad=k // 2, groups=groups, count=count)


def _dw(name, C, H, stride=1, count=1):
    return _conv(name, C, H, C, 3, stride, count, groups=C)


RESNET18 = (
    _conv("conv1", 3, 224, 64, 7, stride=2),
    _conv("layer1 3x3", 64, 56, 64, 3, count=4),
    _conv("layer2.0.conv1", 64, 56, 128, 3, stride=2),
    _conv("layer2.0.downsample", 64, 56, 128, 1, stride=2),
    _conv("layer2 3x3", 128, 28, 128, 3, count=3),
    _conv("layer3.0.conv1", 128, 28, 256, 3, stride=2),
    _conv("layer3.0.downsample", 128, 28, 256, 1, stride=2),
    _conv("layer3 3x3", 256, 14, 256, 3, count=3),
    _conv("layer4.0.conv1", 256, 14, 512, 3, stride=2),
    _conv("layer4.0.downsample", 256, 14, 512, 1, stride=2),
    _conv("layer4 3x3", 512, 7, 512, 3, count=3),
)

RESNET50 = (
    _conv("conv1", 3, 224, 64, 7, stride=2),
    # layer1: 3 bottlenecks, width 64, 56x56
    _conv("layer1.0.conv1", 64, 56, 64, 1),
    _conv("layer1 3x3", 64, 56, 64, 3, count=3),
    _conv("layer1 expand+downsample", 64, 56, 256, 1, count=4),
    _conv("layer1 reduce", 256, 56, 64, 1, count=2),
    # layer2: 4 bottlenecks, width 128, 56 -> 28
    _conv("layer2.0.conv1", 256, 56, 128, 1),
    _conv("layer2.0.conv2", 128, 56, 128, 3, stride=2),
    _conv("layer2.0.downsample", 256, 56, 512, 1, stride=2),
    _conv("layer2 expand", 128, 28, 512, 1, count=4),
    _conv("layer2 reduce", 512, 28, 128, 1, count=3),
    _conv("layer2 3x3", 128, 28, 128, 3, count=3),
    # layer3: 6 bottlenecks, width 256, 28 -> 14
    _conv("layer3.0.conv1", 512, 28, 256, 1),
    _conv("layer3.0.conv2", 256, 28, 256, 3, stride=2),
    _conv("layer3.0.downsample", 512, 28, 1024, 1, stride=2),
    _conv("layer3 expand", 256, 14, 1024, 1, count=6),
    _conv("layer3 reduce", 1024, 14, 256, 1, count=5),
    _conv("layer3 3x3", 256, 14, 256, 3, count=5),
    # layer4: 3 bottlenecks, width 512, 14 -> 7
    _conv("layer4.0.conv1", 1024, 14, 512, 1),
    _conv("layer4.0.conv2", 512, 14, 512, 3, stride=2),
    _conv("layer4.0.downsample", 1024, 14, 2048, 1, stride=2),
    _conv("layer4 expand", 512, 7, 2048, 1, count=3),
    _conv("layer4 reduce", 2048, 7, 512, 1, count=2),
    _conv("layer4 3x3", 512, 7, 512, 3, count=2),
)

VGG16 = (
    _conv("conv1_1", 3, 224, 64, 3),
    _conv("conv1_2", 64, 224, 64, 3),
    _conv("conv2_1", 64, 112, 128, 3),
    _conv("conv2_2", 128, 112, 128, 3),
    _conv("conv3_1", 128, 56, 256, 3),
    _conv("conv3_2/3", 256, 56, 256, 3, count=2),
    _conv("conv4_1", 256, 28, 512, 3),
    _conv("conv4_2/3", 512, 28, 512, 3, count=2),
    _conv("conv5_x", 512, 14, 512, 3, count=3),
)

# MobileNetV2: stem, then inverted residual blocks (expand 1x1, depthwise 3x3,
# project 1x1) with settings (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2)
# (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1), then a 1x1 to 1280.
MOBILENET_V2 = (
    _conv("stem", 3, 224, 32, 3, stride=2),
    _dw("block1 dw", 32, 112),
    _conv("block1 project", 32, 112, 16, 1),
    _conv("c24.0 expand", 16, 112, 96, 1),
    _dw("c24.0 dw s2", 96, 112, stride=2),
    _conv("c24.0 project", 96, 56, 24, 1),
    _conv("expand 24>144", 24, 56, 144, 1, count=2),
    _dw("c24.1 dw", 144, 56),
    _conv("c24.1 project", 144, 56, 24, 1),
    _dw("c32.0 dw s2", 144, 56, stride=2),
    _conv("c32.0 project", 144, 28, 32, 1),
    _conv("expand 32>192", 32, 28, 192, 1, count=3),
    _dw("c32 dw", 192, 28, count=2),
    _conv("c32 project", 192, 28, 32, 1, count=2),
    _dw("c64.0 dw s2", 192, 28, stride=2),
    _conv("c64.0 project", 192, 14, 64, 1),
    _conv("expand 64>384", 64, 14, 384, 1, count=4),
    _dw("dw 384", 384, 14, count=4),
    _conv("c64 project", 384, 14, 64, 1, count=3),
    _conv("c96.0 project", 384, 14, 96, 1),
    _conv("expand 96>576", 96, 14, 576, 1, count=3),
    _dw("c96 dw", 576, 14, count=2),
    _conv("c96 project", 576, 14, 96, 1, count=2),
    _dw("c160.0 dw s2", 576, 14, stride=2),
    _conv("c160.0 project", 576, 7, 160, 1),
    _conv("expand 160>960", 160, 7, 960, 1, count=3),
    _dw("dw 960", 960, 7, count=3),
    _conv("c160 project", 960, 7, 160, 1, count=2),
    _conv("c320 project", 960, 7, 320, 1),
    _conv("head 1x1", 320, 7, 1280, 1),
)

CIFAR_RESNET20 = (
    _conv("conv1", 3, 32, 16, 3),
    _conv("stage1 3x3", 16, 32, 16, 3, count=6),
    _conv("stage2.0.conv1", 16, 32, 32, 3, stride=2),
    _conv("stage2 3x3", 32, 16, 32, 3, count=5),
    _conv("stage3.0.conv1", 32, 16, 64, 3, stride=2),
    _conv("stage3 3x3", 64, 8, 64, 3, count=5),
)

# One layer of each kind real networks are built from (issue 11's table), not
# a network: counts are 1.  ResNet's last stages (small images, many
# channels), a strided 3x3 and the 7x7/2 stem, 1x1s at both ends of ResNet-50,
# ConvNeXt's depthwise 7x7 (stages 1 and 3), EfficientNet's depthwise 5x5,
# a CIFAR ResNet 3x3 and a ResNeXt-50 (32x4d) grouped 3x3.
KINDS = (
    _conv("3x3 512@7", 512, 7, 512, 3),
    _conv("3x3 256@14", 256, 14, 256, 3),
    _conv("3x3/2 128>256@28", 128, 28, 256, 3, stride=2),
    _conv("1x1 256>64@56", 256, 56, 64, 1),
    _conv("dw 7x7 96@56", 96, 56, 96, 7, groups=96),
    _conv("dw 7x7 384@14", 384, 14, 384, 7, groups=384),
    _conv("dw 5x5 480@14", 480, 14, 480, 5, groups=480),
    _conv("3x3 16@32", 16, 32, 16, 3),
    _conv("grouped 3x3 128@56 g32", 128, 56, 128, 3, groups=32),
    _conv("stem 7x7/2 3>64@224", 3, 224, 64, 7, stride=2),
    _conv("1x1 2048>512@7", 2048, 7, 512, 1),
)

SUITES = {
    "cifar_resnet20": CIFAR_RESNET20,
    "resnet18": RESNET18,
    "resnet50": RESNET50,
    "mobilenet_v2": MOBILENET_V2,
    "vgg16": VGG16,
    "kinds": KINDS,
}

# How many conv layers each network has, to check the tables above add up
# (kinds is a sample of layer kinds, not a network).
CONV_LAYER_COUNTS = {"cifar_resnet20": 19, "resnet18": 20, "resnet50": 53,
                     "mobilenet_v2": 52, "vgg16": 13}

DEFAULT_SUITE = "cifar_resnet20"


def suite(name: str, batch: int = 1):
    """The layers of a built-in suite at batch size `batch`."""
    return tuple(layer.with_batch(batch) for layer in SUITES[name])
