"""Hand-picked convolution cases: one per parameter kind, plus combinations.
Each is a dict of conv2d keyword arguments and shapes."""


def case(name, x, w, stride=1, padding=0, dilation=1, groups=1, bias=False, activation=None):
    return dict(name=name, x=x, w=w, stride=stride, padding=padding, dilation=dilation,
                groups=groups, bias=bias, activation=activation)


CASES = [
    case("3x3_pad1", (1, 8, 12, 12), (16, 8, 3, 3), padding=1, bias=True),
    case("3x3_valid", (1, 5, 9, 11), (7, 5, 3, 3)),
    case("3x3_stride2", (1, 6, 13, 13), (10, 6, 3, 3), stride=2, padding=1),
    case("stride_pair", (1, 4, 11, 14), (5, 4, 3, 3), stride=(2, 3), padding=1),
    case("asym_pad", (1, 4, 9, 10), (6, 4, 3, 3), padding=(1, 2, 0, 3), bias=True),
    case("pad_pair", (1, 3, 8, 8), (4, 3, 3, 3), padding=(2, 1)),
    case("same", (1, 4, 9, 8), (6, 4, 3, 3), padding="same", bias=True),
    case("same_even_kernel", (1, 3, 7, 9), (4, 3, 4, 2), padding="same"),
    case("valid_str", (1, 3, 7, 9), (4, 3, 3, 3), padding="valid"),
    case("dilation2", (1, 4, 14, 14), (6, 4, 3, 3), dilation=2, padding=2),
    case("dilation_pair", (1, 3, 12, 15), (5, 3, 3, 2), dilation=(2, 3), padding=1),
    case("groups2", (1, 8, 10, 10), (12, 4, 3, 3), groups=2, padding=1, bias=True),
    case("groups4_stride2", (2, 8, 11, 9), (8, 2, 3, 3), groups=4, stride=2, padding=1),
    case("depthwise", (1, 16, 12, 12), (16, 1, 3, 3), groups=16, padding=1, bias=True),
    case("depthwise_mult2", (1, 6, 10, 9), (12, 1, 3, 3), groups=6, padding=1),
    case("depthwise_stride2_5x5", (1, 8, 15, 15), (8, 1, 5, 5), groups=8, stride=2, padding=2),
    case("depthwise_dilated", (2, 4, 13, 13), (8, 1, 3, 3), groups=4, dilation=2, padding=(1, 3, 2, 0)),
    case("batch3", (3, 5, 9, 9), (7, 5, 3, 3), padding=1, bias=True),
    case("unbatched", (5, 9, 9), (7, 5, 3, 3), padding=1),
    case("nonsquare_kernel", (1, 4, 10, 13), (6, 4, 3, 5), padding=(1, 2)),
    case("nonsquare_image", (1, 3, 5, 23), (4, 3, 3, 3), padding=1),
    case("1x1", (1, 24, 7, 9), (20, 24, 1, 1), bias=True),
    case("1x1_stride2", (1, 8, 9, 9), (12, 8, 1, 1), stride=2),
    case("1x1_padded", (1, 8, 5, 5), (6, 8, 1, 1), padding=1),
    case("7x7_stride2", (1, 3, 23, 23), (8, 3, 7, 7), stride=2, padding=3, bias=True),
    case("relu", (1, 6, 8, 8), (9, 6, 3, 3), padding=1, bias=True, activation="relu"),
    case("relu6", (1, 6, 8, 8), (9, 6, 3, 3), padding=1, bias=True, activation="relu6"),
    case("clamp", (1, 6, 8, 8), (9, 6, 3, 3), padding=1, activation=("clamp", -0.5, 0.25)),
    # K above the K block (kc = 256 in the scalar table), M above one tile
    case("deep_k", (1, 40, 9, 9), (19, 40, 3, 3), padding=1, bias=True),
    case("wide_m_1x1", (1, 300, 6, 6), (37, 300, 1, 1)),
    # many Winograd tiles and a partial last panel
    case("wino_many_tiles", (1, 4, 31, 29), (5, 4, 3, 3), padding=1),
    case("single_pixel_out", (1, 3, 3, 3), (4, 3, 3, 3)),
    case("kernel_equals_padded", (1, 2, 1, 1), (3, 2, 3, 3), padding=1),
    case("big_padding", (1, 2, 4, 4), (3, 2, 3, 3), padding=4),
]


def beyond_im2col_limit(C, k=3):
    """A square input side (stride 1, "same" padding) whose Im2Col matrix
    (C*k*k by H*W floats) is over the cost model's limit of 8 x L2
    (kernels/choose.c, LC_IM2COL_L2_MULTIPLE), so "auto" cannot answer Im2Col
    there on any CPU: with a large L2 the scalar prices can make Im2Col win
    every smaller size."""
    import leanconv as lc
    l2 = lc.cpu_features()["cache"]["l2"]
    side = 1
    while C * k * k * side * side * 4 <= 8 * l2:
        side += 8
    return side
