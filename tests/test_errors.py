"""Bad input: each case gets the exact exception class and a message that
names the problem.  Never a crash, never a silent wrong answer."""
import numpy as np
import pytest

import leanconv as lc

X = np.zeros((1, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)

BAD = [
    # (id, call, exception, message fragment)
    ("x_ndim_2", lambda: lc.conv2d(np.zeros((4, 8), np.float32), W), ValueError, "3 or 4 dimensions"),
    ("x_ndim_5", lambda: lc.conv2d(np.zeros((1, 1, 4, 8, 8), np.float32), W), ValueError, "3 or 4 dimensions"),
    ("w_ndim_3", lambda: lc.conv2d(X, np.zeros((6, 4, 3), np.float32)), ValueError, "weight shape must have 4"),
    ("channel_mismatch", lambda: lc.conv2d(X, np.zeros((6, 3, 3, 3), np.float32)), ValueError, "channels"),
    ("channel_mismatch_groups", lambda: lc.conv2d(X, W, groups=2), ValueError, "groups"),
    ("m_not_divisible", lambda: lc.conv2d(X, np.zeros((5, 2, 3, 3), np.float32), groups=2), ValueError, "divisible by groups"),
    ("groups_zero", lambda: lc.conv2d(X, W, groups=0), ValueError, "groups must be >= 1"),
    ("groups_negative", lambda: lc.conv2d(X, W, groups=-2), ValueError, "groups must be >= 1"),
    ("groups_float", lambda: lc.conv2d(X, W, groups=1.0), TypeError, "groups must be an int"),
    ("stride_zero", lambda: lc.conv2d(X, W, stride=0), ValueError, "stride must be >= 1"),
    ("stride_negative_pair", lambda: lc.conv2d(X, W, stride=(1, -1)), ValueError, "stride must be >= 1"),
    ("stride_triple", lambda: lc.conv2d(X, W, stride=(1, 1, 1)), ValueError, "pair"),
    ("stride_float", lambda: lc.conv2d(X, W, stride=1.5), TypeError, "stride must be an int"),
    ("stride_bool", lambda: lc.conv2d(X, W, stride=True), TypeError, "stride must be an int"),
    ("dilation_zero", lambda: lc.conv2d(X, W, dilation=0), ValueError, "dilation must be >= 1"),
    ("padding_negative", lambda: lc.conv2d(X, W, padding=-1), ValueError, "padding must be >= 0"),
    ("padding_negative_4", lambda: lc.conv2d(X, W, padding=(0, 1, -1, 0)), ValueError, "padding must be >= 0"),
    ("padding_3_values", lambda: lc.conv2d(X, W, padding=(1, 1, 1)), ValueError, "a 4-tuple (top, bottom, left, right)"),
    ("padding_1_tuple", lambda: lc.conv2d(X, W, padding=(1,)), ValueError, "a 1-tuple is not accepted"),
    ("padding_1_tuple_forms", lambda: lc.conv2d(X, W, padding=(1,)), ValueError, "an int, a pair (h, w), a 4-tuple"),
    ("stride_2_63", lambda: lc.conv2d(X, W, stride=2**63), ValueError, "stride must be < 2**62"),
    ("stride_pair_2_64", lambda: lc.conv2d(X, W, stride=(1, 2**64)), ValueError, "stride must be < 2**62"),
    ("dilation_2_63", lambda: lc.conv2d(X, W, dilation=2**63), ValueError, "dilation must be < 2**62"),
    ("padding_2_63", lambda: lc.conv2d(X, W, padding=2**63), ValueError, "padding must be < 2**62"),
    ("padding_4_2_63", lambda: lc.conv2d(X, W, padding=(0, 0, 0, 2**63)), ValueError, "padding must be < 2**62"),
    ("plan_padding_2_63", lambda: lc.Conv2d(W, padding=2**63), ValueError, "padding must be < 2**62"),
    ("workspace_stride_2_63", lambda: lc.workspace_bytes(X.shape, W.shape, stride=2**63), ValueError, "stride must be < 2**62"),
    ("threads_2_31", lambda: lc.conv2d(X, W, threads=2**31), ValueError, "threads must be < 2**31"),
    ("threads_2_63", lambda: lc.conv2d(X, W, threads=2**63), ValueError, "threads must be < 2**31"),
    ("set_threads_2_31", lambda: lc.set_num_threads(2**31), ValueError, "threads must be < 2**31"),
    ("threads_numpy_bool", lambda: lc.conv2d(X, W, threads=np.bool_(True)), TypeError, "threads must be an int"),
    ("padding_word", lambda: lc.conv2d(X, W, padding="full"), ValueError, "'valid' or 'same'"),
    ("same_with_stride", lambda: lc.conv2d(X, W, padding="same", stride=2), ValueError, "needs stride 1"),
    ("kernel_too_big", lambda: lc.conv2d(X, np.zeros((6, 4, 9, 9), np.float32)), ValueError, "larger than the padded input"),
    ("dilated_kernel_too_big", lambda: lc.conv2d(X, W, dilation=4), ValueError, "larger than the padded input"),
    ("zero_size_x", lambda: lc.conv2d(np.zeros((0, 4, 8, 8), np.float32), W), ValueError, "zero-size"),
    ("zero_size_hw", lambda: lc.conv2d(np.zeros((1, 4, 0, 8), np.float32), W), ValueError, "zero-size"),
    ("zero_size_w", lambda: lc.conv2d(X, np.zeros((0, 4, 3, 3), np.float32)), ValueError, "zero-size"),
    ("bias_shape", lambda: lc.conv2d(X, W, np.zeros(5, np.float32)), ValueError, "bias must have shape (6,)"),
    ("bias_2d", lambda: lc.conv2d(X, W, np.zeros((6, 1), np.float32)), ValueError, "bias must have shape"),
    ("x_float64", lambda: lc.conv2d(X.astype(np.float64), W), TypeError, "x.astype(np.float32)"),
    ("x_float16", lambda: lc.conv2d(X.astype(np.float16), W), TypeError, "float16"),
    ("x_int", lambda: lc.conv2d(X.astype(np.int32), W), TypeError, "int32"),
    ("w_float64", lambda: lc.conv2d(X, W.astype(np.float64)), TypeError, "weight.astype(np.float32)"),
    ("bias_float64", lambda: lc.conv2d(X, W, np.zeros(6)), TypeError, "bias.astype(np.float32)"),
    ("x_not_array", lambda: lc.conv2d("image", W), TypeError, "NumPy array"),
    ("x_list", lambda: lc.conv2d(X.tolist(), W), TypeError, "pass np.asarray(x, dtype=np.float32)"),
    ("w_list", lambda: lc.conv2d(X, W.tolist()), TypeError, "pass np.asarray(weight, dtype=np.float32)"),
    ("bias_list", lambda: lc.conv2d(X, W, [0.0] * 6), TypeError, "pass np.asarray(bias, dtype=np.float32)"),
    ("x_big_endian_float64", lambda: lc.conv2d(X.astype(">f8"), W), TypeError, "x.astype(np.float32)"),
    ("x_complex", lambda: lc.conv2d(X.astype(np.complex64), W), TypeError, "complex64"),
    ("unknown_algorithm", lambda: lc.conv2d(X, W, algorithm="fft"), ValueError, "unknown algorithm 'fft'"),
    ("algorithm_not_str", lambda: lc.conv2d(X, W, algorithm=3), TypeError, "algorithm must be a str"),
    ("unknown_activation", lambda: lc.conv2d(X, W, activation="swish"), ValueError, "activation 'swish' is not valid"),
    ("clamp_reversed", lambda: lc.conv2d(X, W, activation=("clamp", 1.0, 0.0)), ValueError, "lo <= hi"),
    ("clamp_nan", lambda: lc.conv2d(X, W, activation=("clamp", np.nan, 1.0)), ValueError, "not NaN"),
    ("winograd_stride2", lambda: lc.conv2d(X, W, stride=2, algorithm="winograd_f4"), ValueError, "3x3 kernel with stride 1"),
    ("winograd_5x5", lambda: lc.conv2d(X, np.zeros((6, 4, 5, 5), np.float32), padding=2, algorithm="winograd"), ValueError, "algorithm='auto'"),
    ("depthwise_dense", lambda: lc.conv2d(X, W, algorithm="depthwise"), ValueError, "groups == C"),
    ("out_aliases_x", lambda: _alias(), ValueError, "overlaps the input x"),
    ("out_overlaps_bias", lambda: _bias_alias(), ValueError, "out overlaps the bias"),
    ("out_wrong_shape", lambda: lc.conv2d(X, W, out=np.zeros((1, 6, 8, 8), np.float32)), ValueError, "shape (1, 6, 6, 6)"),
    ("out_wrong_dtype", lambda: lc.conv2d(X, W, out=np.zeros((1, 6, 6, 6), np.float64)), ValueError, "float32"),
    ("out_not_contiguous", lambda: lc.conv2d(X, W, out=np.zeros((1, 6, 6, 12), np.float32)[..., ::2]), ValueError, "C-contiguous"),
    ("out_readonly", lambda: lc.conv2d(X, W, out=_readonly((1, 6, 6, 6))), ValueError, "out is read-only"),
    ("out_misaligned", lambda: lc.conv2d(X, W, out=_misaligned((1, 6, 6, 6))), ValueError, "out is not aligned"),
    ("out_big_endian", lambda: lc.conv2d(X, W, out=np.zeros((1, 6, 6, 6), ">f4")), ValueError, "out has the other byte order"),
    ("out_wrong_dtype_named", lambda: lc.conv2d(X, W, out=np.zeros((1, 6, 6, 6), np.float64)), ValueError, "out has dtype float64"),
    ("threads_zero", lambda: lc.conv2d(X, W, threads=0), ValueError, "threads must be >= 1"),
    ("threads_float", lambda: lc.conv2d(X, W, threads=2.0), TypeError, "threads must be an int"),
    ("absurd_workspace_shape", lambda: lc.workspace_bytes((1 << 40, 4, 1 << 20, 1 << 20), (6, 4, 3, 3)), ValueError, "64 bits"),
    ("absurd_dim", lambda: lc.workspace_bytes((1, 4, 1 << 63, 8), (6, 4, 3, 3)), ValueError, "absurd"),
    ("plan_input_mismatch", lambda: lc.Conv2d(W)(np.zeros((1, 5, 8, 8), np.float32)), ValueError, "channels"),
    ("set_threads_zero", lambda: lc.set_num_threads(0), ValueError, "threads must be >= 1"),
    ("use_isa_unknown", lambda: lc.use_isa("sse9").__enter__(), ValueError, "available"),
]


def _alias():
    buf = np.zeros((1, 4, 8, 8), np.float32)
    lc.conv2d(buf, np.zeros((4, 4, 1, 1), np.float32), out=buf)


def _bias_alias():
    """bias is a view into the very buffer the output is to be written to."""
    buf = np.zeros((1, 6, 6, 6), np.float32)
    lc.conv2d(X, W, buf.reshape(-1)[:6], out=buf)


def _misaligned(shape):
    raw = np.zeros(int(np.prod(shape)) * 4 + 1, np.uint8)[1:]
    a = raw.view(np.float32).reshape(shape)
    assert not a.flags.aligned and a.flags.writeable and a.flags.c_contiguous
    return a


def _readonly(shape):
    a = np.zeros(shape, np.float32)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("call,exc,fragment", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_out_overlapping_view_is_refused():
    """out is another contiguous view that overlaps x's memory."""
    buf = np.zeros((1, 8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        lc.conv2d(buf[:, 0:4], np.zeros((4, 4, 1, 1), np.float32), out=buf[:, 2:6])


def test_memory_error_on_impossible_workspace():
    """A valid call whose im2col matrix needs ~275 GB: MemoryError, not a crash."""
    x = np.zeros((1, 64, 512, 512), np.float32)
    w = np.zeros((1, 64, 64, 64), np.float32)
    plan = lc.Conv2d(w, padding=(32, 31, 32, 31), algorithm="im2col")
    assert plan.workspace_bytes(x.shape) > 200e9
    with pytest.raises(MemoryError, match="workspace"):
        plan(x)


def test_sizes_do_not_overflow_quietly():
    with pytest.raises(ValueError):
        lc.workspace_bytes((1 << 30, 1 << 10, 1 << 12, 1 << 12), (1 << 10, 1 << 10, 3, 3), padding=1)


def test_the_c_descriptor_refuses_a_zero_dimension():
    """What the cost model and the size queries divide by: a zero there (an
    empty tensor inside an ONNX model) stopped the process with SIGFPE."""
    from leanconv import _core, _isa
    geometry = (0, 3, 8, 8, 4, 1, 1, 8, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1)
    with pytest.raises(ValueError, match="N is 0"):
        _core.sizes(1, _isa.isa_id(), geometry, 1)
    with pytest.raises(ValueError, match="stride is 0"):
        _core.cost(1, _isa.isa_id(), (1,) + geometry[1:9] + (0,) + geometry[10:], 1)
    assert _core.sizes(1, _isa.isa_id(), (1,) + geometry[1:], 1)[0] > 0
