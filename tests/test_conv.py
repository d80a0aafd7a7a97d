"""Conv2d layers (spec section 7, "Layer kinds") against their dense equivalent.

The dense matrix of a conv kernel is built here with plain loops, independently of the package
(``layers.footprint_table`` is code under test). Then:

- a conv network gives bitwise the same trace as its dense equivalent under every schedule;
- its gradient is the dense equivalent's gradient folded back onto the kernel entries, and the
  fold of the independent autograd reference (``autograd_reference.py``) on the dense equivalent;
- conv models round-trip through the model file; bad geometries and spellings are one-line
  UserErrors; the spelling round-trips and the init is Xavier-uniform per kind.
"""
import h5py
import numpy as np
import pytest

from pyasync_snn import EventBatch, Network, UserError, io, simulate
from pyasync_snn.gradients import loss_and_grad
from pyasync_snn.io import read_model, write_model
from pyasync_snn.layers import Conv2d, parse_layers

from autograd_reference import batch_loss_and_grad

MIXED = "2x7x7,c3k3s2p1,c4k2,5"        # stride 2 + padding, then stride 1, then dense
ODD = "1x6x5,c2k3x2,c3k2s2p1,4"        # non-square kernel, stride 1, padding 0 first
SMALL = "1x5x5,c2k3s2p1,c3k2,3"        # for the (slow) autograd reference
EVENT_FIELDS = ("neuron", "timestep", "fired_step", "emitted_step", "v_pre", "refractory")


# ---------------------------------------------------------------- independent helpers
def out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def conv_positions(kernel_shape, conv):
    """Every (dense row, dense column, kernel index) of a conv layer, by plain loops."""
    c_out, c_in, kh, kw = kernel_shape
    ci_, h, w = conv.in_shape
    assert ci_ == c_in
    (sh, sw), (ph, pw) = conv.stride, conv.padding
    ho, wo = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    entries = []
    for co in range(c_out):
        for ci in range(c_in):
            for oy in range(ho):
                for ox in range(wo):
                    for ky in range(kh):
                        for kx in range(kw):
                            y, x = oy * sh - ph + ky, ox * sw - pw + kx
                            if not (0 <= y < h and 0 <= x < w):
                                continue
                            entries.append(((co * ho + oy) * wo + ox, (ci * h + y) * w + x, (co, ci, ky, kx)))
    return entries, (c_out * ho * wo, c_in * h * w)


def dense_of(kernel, conv):
    """The dense matrix (n_out, n_in) of a conv kernel."""
    entries, shape = conv_positions(kernel.shape, conv)
    dense = np.zeros(shape, dtype=kernel.dtype)
    for row, col, k in entries:
        assert dense[row, col] == 0
        dense[row, col] = kernel[k]
    return dense


def fold(dense_grad, kernel_shape, conv):
    """Sum a gradient w.r.t. the dense matrix back onto the kernel entries it is made of."""
    entries, shape = conv_positions(kernel_shape, conv)
    assert dense_grad.shape == shape
    grad = np.zeros(kernel_shape)
    for row, col, k in entries:
        grad[k] += dense_grad[row, col]
    return grad


def dense_network(net):
    """The all-dense network with the same neurons and connections as ``net``."""
    weights = [w if conv is None else dense_of(w, conv) for w, conv in zip(net.weights, net.convs)]
    return Network(tuple(weights), net.threshold, net.beta)


def fold_all(net, dense_grads):
    return [g if conv is None else fold(g, w.shape, conv) for g, w, conv in zip(dense_grads, net.weights, net.convs)]


def conv_by_slicing(x, kernel, conv):
    """An independent conv2d forward (cross-correlation with zero padding) of a map ``x (C, H, W)``."""
    (sh, sw), (ph, pw) = conv.stride, conv.padding
    c_out, _, kh, kw = kernel.shape
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    ho, wo = out_size(x.shape[1], kh, sh, ph), out_size(x.shape[2], kw, sw, pw)
    out = np.zeros((c_out, ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            window = xp[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
            out[:, oy, ox] = np.tensordot(kernel, window, axes=([1, 2, 3], [0, 1, 2]))
    return out


def make_case(spelling, seed=0, scale=2.5, n_samples=4, n_timesteps=8, density=0.3):
    rng = np.random.default_rng(seed)
    net = Network.xavier(spelling, seed=seed)
    net = net.with_weights([w * scale for w in net.weights])
    x = (rng.random((n_samples, n_timesteps, net.layer_sizes[0])) < density).astype(int)
    x += rng.random(x.shape) < density / 3  # some counts of 2
    return net, EventBatch.from_dense(x, rng.integers(0, net.n_outputs, n_samples))


def user_error(fn, *args, contains=(), **kwargs):
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    for part in contains:
        assert part in message, f"{part!r} not in {message!r}"
    return message


# ---------------------------------------------------------------- the helper itself
@pytest.mark.parametrize("spelling", [MIXED, ODD, SMALL])
def test_dense_helper_is_a_convolution(spelling):
    net = Network.xavier(spelling, seed=4)
    rng = np.random.default_rng(0)
    for w, conv, shape in zip(net.weights, net.convs, net.layer_shapes):
        if conv is None:
            continue
        x = rng.normal(size=shape)
        dense = dense_of(w, conv)
        expected = conv_by_slicing(x, w, conv)
        np.testing.assert_allclose(dense @ x.ravel(), expected.ravel(), rtol=1e-12, atol=1e-12)
        # fold is the adjoint of building the dense matrix: <fold(G), K> = <G, dense(K)>
        g = rng.normal(size=dense.shape)
        assert np.sum(fold(g, w.shape, conv) * w) == pytest.approx(np.sum(g * dense), rel=1e-12)


def test_layer_shapes_follow_the_output_formula():
    net = Network.xavier(MIXED, seed=1)
    assert net.layer_shapes == ((2, 7, 7), (3, 4, 4), (4, 3, 3), (5,))
    assert net.layer_sizes == (98, 48, 36, 5)
    assert net.layer_names() == ["layer 1 (conv 3x4x4)", "layer 2 (conv 4x3x3)", "layer 3 (5, output)"]
    odd = Network.xavier(ODD, seed=1)
    assert odd.layer_shapes == ((1, 6, 5), (2, 4, 4), (3, 3, 3), (4,))
    assert [w.shape for w in odd.weights] == [(2, 1, 3, 2), (3, 2, 2, 2), (4, 27)]


# ---------------------------------------------------------------- forward: bitwise the dense trace
def fanout(net):
    """Targets reached by one spike of each presynaptic unit, per layer (structural, from the loops)."""
    fans = []
    for w, conv, n_in in zip(net.weights, net.convs, net.layer_sizes[:-1]):
        if conv is None:
            fans.append(np.full(n_in, w.shape[0]))
        else:
            entries, (_, n) = conv_positions(w.shape, conv)
            targets = {(row, col) for row, col, _ in entries}
            fans.append(np.bincount([col for _, col in targets], minlength=n))
    return fans


def expected_sops(net, batch, trace, b):
    fans = fanout(net)
    offsets = np.concatenate([[0], np.cumsum(net.layer_sizes[1:])])
    sops = int(np.sum(batch.dense(b).sum(axis=0) * fans[0]))
    for i in trace.events(b)["neuron"]:
        layer = int(np.searchsorted(offsets, i, side="right") - 1)
        if layer + 1 < net.n_layers:
            sops += int(fans[layer + 1][i - offsets[layer]])
    return sops


FORWARD_CASES = [
    # (spelling, schedule, group_size, extra simulate kwargs, dtype)
    (MIXED, "layered", 1, {}, "float64"),
    (MIXED, "momentum", 1, dict(momentum_noise=0.0), "float64"),
    (MIXED, "momentum", 3, dict(momentum_noise=0.0), "float32"),
    (MIXED, "momentum", 2, {}, "float64"),
    (MIXED, "random", 1, {}, "float32"),
    (MIXED, "random", 4, dict(refractory_dropout=0.3), "float64"),
    (ODD, "layered", 1, {}, "float32"),
    (ODD, "momentum", 1, dict(momentum_noise=0.0), "float64"),
    (ODD, "momentum", 3, dict(momentum_noise=0.0, refractory_dropout=0.3), "float64"),
    (ODD, "momentum", 2, {}, "float32"),
    (ODD, "random", 1, {}, "float64"),
    (ODD, "random", 4, {}, "float32"),
]


@pytest.mark.parametrize("spelling,schedule,group_size,kwargs,dtype", FORWARD_CASES)
def test_conv_trace_equals_dense_equivalent_trace(spelling, schedule, group_size, kwargs, dtype):
    net, batch = make_case(spelling, seed=1)
    dense = dense_network(net)
    assert dense.layer_sizes == net.layer_sizes
    run = lambda n: simulate(n, batch, schedule=schedule, group_size=group_size, seed=5, dtype=dtype, **kwargs)
    got, expected = run(net), run(dense)
    assert got.n_events == expected.n_events
    assert got.n_events > 40 * len(batch)
    assert np.all(got.metrics.spikes_per_layer > 0)  # every layer fires
    if kwargs.get("refractory_dropout"):
        assert not np.all(got.refractory)  # dropout really happened
    for b in range(len(batch)):
        ev, ev_dense = got.events(b), expected.events(b)
        for name in EVENT_FIELDS:
            np.testing.assert_array_equal(ev[name], ev_dense[name], err_msg=f"{name} of sample {b}")
        if dtype == "float32":
            assert ev["v_pre"].dtype == np.float32
    np.testing.assert_array_equal(got.output_counts, expected.output_counts)
    for name in ("spikes_per_layer", "steps_per_timestep", "steps_to_first_output", "spikes_to_first_output",
                 "steps_to_first_correct", "spikes_to_first_correct", "count_prediction",
                 "first_spike_prediction", "timestep_spikes_to_output", "timestep_spikes_to_correct", "checks"):
        np.testing.assert_array_equal(getattr(got.metrics, name), getattr(expected.metrics, name), err_msg=name)
    # SOPs legitimately differ: a conv spike reaches only its footprint
    for b in range(len(batch)):
        assert got.metrics.sops[b] == expected_sops(net, batch, got, b)
        assert expected.metrics.sops[b] == expected_sops(dense, batch, expected, b)
    assert np.all(got.metrics.sops < expected.metrics.sops)


# ---------------------------------------------------------------- gradients: the fold of the dense one
def assert_close(got, expected, rtol, atol_scale):
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        scale = np.abs(e).max()
        assert scale > 0
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol_scale * scale)


@pytest.mark.parametrize("spelling", [MIXED, ODD])
@pytest.mark.parametrize("schedule,group_size,dropout", [("layered", 1, 0.0), ("momentum", 1, 0.0),
                                                         ("random", 2, 0.0), ("momentum", 3, 0.3)])
def test_conv_gradient_is_the_folded_dense_gradient(spelling, schedule, group_size, dropout):
    net, batch = make_case(spelling, seed=1)
    dense = dense_network(net)
    run = lambda n: simulate(n, batch, schedule=schedule, group_size=group_size, seed=2, momentum_noise=0.0,
                             refractory_dropout=dropout, dtype="float64")
    trace, dense_trace = run(net), run(dense)
    assert trace.n_events > 100
    for loss, surrogate in (("rate", "atan"), ("count", "fast-sigmoid")):
        value, grads = loss_and_grad(net, batch, trace=trace, loss=loss, surrogate=surrogate)
        dense_value, dense_grads = loss_and_grad(dense, batch, trace=dense_trace, loss=loss, surrogate=surrogate)
        assert value == dense_value
        assert [g.shape for g in grads] == [w.shape for w in net.weights]
        assert all(np.any(g != 0) for g in grads)
        assert_close(grads, fold_all(net, dense_grads), rtol=1e-12, atol_scale=1e-12)


@pytest.mark.parametrize("schedule,group_size", [("layered", 1), ("momentum", 1), ("random", 2)])
def test_conv_gradient_equals_autograd_reference_on_dense_equivalent(schedule, group_size):
    net, batch = make_case(SMALL, seed=11 + group_size, scale=2.0, n_samples=2, n_timesteps=5, density=0.35)
    dense = dense_network(net)
    trace = simulate(net, batch, schedule=schedule, group_size=group_size, seed=1, momentum_noise=0.0,
                     dtype="float64")
    assert trace.n_events > 20
    value, grads = loss_and_grad(net, batch, trace=trace)
    ref_value, ref_dense = batch_loss_and_grad(list(dense.weights), dense.threshold, dense.beta, batch, trace)
    assert value == pytest.approx(ref_value, rel=1e-12)
    assert all(np.any(g != 0) for g in grads)
    assert_close(grads, fold_all(net, ref_dense), rtol=1e-8, atol_scale=1e-13)


# ---------------------------------------------------------------- model file
def test_conv_model_round_trips(tmp_path):
    net = Network.xavier(ODD, seed=3, threshold=0.45, beta=0.8)
    path = tmp_path / "conv.h5"
    write_model(path, net)
    with h5py.File(path, "r") as f:
        kinds = [f[f"layers/{l}"].attrs["kind"] for l in range(3)]
        kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in kinds]
        assert kinds == ["conv2d", "conv2d", "dense"]
        first, second = f["layers/0"].attrs, f["layers/1"].attrs
        assert list(first["in_shape"]) == [1, 6, 5] and list(first["stride"]) == [1, 1]
        assert list(first["padding"]) == [0, 0]
        assert list(second["in_shape"]) == [2, 4, 4] and list(second["stride"]) == [2, 2]
        assert list(second["padding"]) == [1, 1]
        assert np.issubdtype(np.asarray(first["in_shape"]).dtype, np.integer)
        assert f["layers/0/weight"].shape == (2, 1, 3, 2)
        assert "in_shape" not in f["layers/2"].attrs
    back = read_model(path)
    assert back.convs == net.convs
    assert back.convs[0] == Conv2d((1, 6, 5)) and back.convs[1] == Conv2d((2, 4, 4), (2, 2), (1, 1))
    assert back.convs[2] is None
    for w, w_back in zip(net.weights, back.weights):
        np.testing.assert_array_equal(w, w_back)
        assert w.dtype == w_back.dtype
    assert (back.threshold, back.beta) == (net.threshold, net.beta)
    assert back.spelling() == ODD and back.layer_shapes == net.layer_shapes


def test_model_without_kind_reads_as_dense(tmp_path):
    net = Network.xavier([6, 4, 3], seed=0)
    path = tmp_path / "dense.h5"
    write_model(path, net)
    with h5py.File(path, "r+") as f:
        for l in range(2):
            del f[f"layers/{l}"].attrs["kind"]
    back = read_model(path)
    assert back.convs == (None, None)
    for w, w_back in zip(net.weights, back.weights):
        np.testing.assert_array_equal(w, w_back)


def test_unknown_kind_in_model_file(tmp_path):
    path = tmp_path / "bad.h5"
    write_model(path, Network.xavier(SMALL, seed=0))
    with h5py.File(path, "r+") as f:
        f["layers/1"].attrs["kind"] = "conv3d"
    user_error(read_model, path, contains=("kind", "conv3d"))


@pytest.mark.parametrize("attribute,value", [("stride", np.array([0, 1])), ("in_shape", np.array([1, 5])),
                                             ("padding", np.array([0.5, 1.0]))])
def test_bad_geometry_attribute_in_model_file(tmp_path, attribute, value):
    path = tmp_path / "bad.h5"
    write_model(path, Network.xavier(SMALL, seed=0))
    with h5py.File(path, "r+") as f:
        f["layers/0"].attrs[attribute] = value
    user_error(read_model, path, contains=(attribute,))


# ---------------------------------------------------------------- bad models and spellings
def test_bad_conv_models_are_one_line_user_errors():
    k = lambda *shape: np.full(shape, 0.1)
    user_error(Network, (k(2, 1, 5, 5),), convs=(Conv2d((1, 3, 3)),), contains=("larger",))
    user_error(Network, (k(2, 1, 4, 2),), convs=(Conv2d((1, 3, 3), padding=(0, 1)),), contains=("larger",))
    user_error(Conv2d, (1, 5, 5), stride=(0, 1), contains=("stride",))
    user_error(Conv2d, (1, 5, 5), padding=(-1, 0), contains=("padding",))
    user_error(Conv2d, (1, 5), contains=("in_shape",))
    user_error(Network, (k(2, 3, 3, 3),), convs=(Conv2d((1, 5, 5)),), contains=("input channels",))
    # a dense layer after a conv map of 2x3x3 = 18 neurons
    user_error(Network, (k(2, 1, 3, 3), k(4, 17)), convs=(Conv2d((1, 5, 5)), None), contains=("17", "18"))
    # a conv layer whose in_shape does not match the 10 neurons before it
    user_error(Network, (k(10, 25), k(2, 1, 2, 2)), convs=(None, Conv2d((1, 3, 3))), contains=("in_shape",))
    # a dense (2-D) weight given a conv geometry, a conv (4-D) weight without one
    user_error(Network, (k(4, 25),), convs=(Conv2d((1, 5, 5)),), contains=("4-D",))
    user_error(Network, (k(2, 1, 3, 3),), convs=(None,), contains=("2-D",))
    user_error(Network, (k(2, 1, 3, 3), k(3, 18)), convs=(Conv2d((1, 5, 5)),), contains=("geometries",))
    net = Network.xavier(MIXED, seed=0)
    user_error(net.check_fits, 97, contains=("97", "98"))
    net.check_fits(98)
    batch = EventBatch.from_dense(np.ones((1, 2, 97), int), [0])
    user_error(simulate, net, batch, contains=("input channels",))


@pytest.mark.parametrize("spelling,word", [("2x34x34,c8k3s0,10", "stride"), ("2x34x34,c8q3,10", "cannot read"),
                                           ("c8k3,10", "input"), ("700,2x3x3,10", "first"),
                                           ("700,c8k3,10", "CxHxW"), ("2x4x4,c2k5,10", "larger"),
                                           ("2x34x34,c0k3,10", "channels"), ("2x34x34,c8k3s2p,10", "cannot read"),
                                           ("2x34x34", "at least one layer"), ("2x0x3,4", "cannot read")])
def test_bad_spellings_are_one_line_user_errors(spelling, word):
    user_error(Network.xavier, spelling, contains=(word,))


# ---------------------------------------------------------------- spelling and init
@pytest.mark.parametrize("spelling,normal", [
    (MIXED, MIXED), (ODD, ODD), ("700,128,20", "700,128,20"),
    ("2x34x34,c8k3s1p0,10", "2x34x34,c8k3,10"),
    ("2x8x8,c4k3x3s2x2p1x1,10", "2x8x8,c4k3s2p1,10"),
    ("1x9x9,c2k1x3s1x2p0x1,3", "1x9x9,c2k1x3s1x2p0x1,3"),
    (" 2X8X8 , C4K3 ,,10", "2x8x8,c4k3,10"),
    ("3x10x12,c4k3s2,c5k2x3p1x0,7,6", "3x10x12,c4k3s2,c5k2x3p1x0,7,6"),
])
def test_spelling_round_trip(spelling, normal):
    net = Network.xavier(spelling, seed=2)
    assert net.spelling() == normal
    assert Network.xavier(normal, seed=2).spelling() == normal
    assert parse_layers(normal) == parse_layers(spelling)
    again = Network.xavier(net.spelling(), seed=2)
    for w, w_again in zip(net.weights, again.weights):
        np.testing.assert_array_equal(w, w_again)
    assert again.convs == net.convs


def test_xavier_uniform_per_kind():
    net = Network.xavier("3x16x16,c8k3s2p1,c6k4x2,50,10", seed=7)
    assert [w.shape for w in net.weights] == [(8, 3, 3, 3), (6, 8, 4, 2), (50, 6 * 5 * 7), (10, 50)]
    for w, conv in zip(net.weights, net.convs):
        if conv is None:
            n_out, n_in = w.shape
            r = np.sqrt(6.0 / (n_in + n_out))
        else:
            c_out, c_in, kh, kw = w.shape
            r = np.sqrt(6.0 / ((c_in + c_out) * kh * kw))
        assert np.abs(w).max() <= r
        assert np.abs(w).max() > 0.9 * r          # the bound is the scale, not a loose one
        assert abs(w.mean()) < 0.1 * r            # centered
        assert np.std(w) == pytest.approx(r / np.sqrt(3), rel=0.15)  # uniform on (-r, r)
    other = Network.xavier("3x16x16,c8k3s2p1,c6k4x2,50,10", seed=8)
    assert not np.array_equal(net.weights[0], other.weights[0])


def test_traces_name_conv_layers(tmp_path):
    """A trace records the network's spelling; figures and `trace info` name the layers by kind."""
    from pyasync_snn.inspection import trace_info
    from pyasync_snn.plots.trace_plots import layer_names, plot_raster
    net, batch = make_case(MIXED, seed=1)
    trace = simulate(net, batch, schedule="momentum", group_size=2)
    assert trace.network == MIXED
    assert layer_names(trace) == ["layer 1 (conv 3x4x4)", "layer 2 (conv 4x3x3)", "layer 3 (5, output)"]
    fig = plot_raster(trace, 0, tmp_path / "r.png")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("layer 1 (conv 3x4x4)") for t in legend)
    assert MIXED in trace_info(trace)
    io.write_trace(tmp_path / "t.h5", trace)
    assert io.read_trace(tmp_path / "t.h5").network == MIXED
    with h5py.File(tmp_path / "t.h5", "r+") as f:
        f.attrs["network"] = "2x7x7,c3k3s2p1,5"  # two layers for a three-layer trace
    user_error(io.read_trace, tmp_path / "t.h5", contains=("network",))


def test_conv_steps_compile_to_placeholders_for_dense_only_networks():
    # Net.conv is None for a dense-only network: its kernels get the conv steps' placeholders
    from numba import njit

    from pyasync_snn.kernels.steps import send_footprint

    @njit
    def sent(net, acc, dirty):
        return send_footprint(net, 0, 5, 1, acc, dirty)

    net = Network.xavier("1x4x4,c2k3p1,3", seed=0).kernel_arrays("float64")
    assert net.conv is True
    assert Network.xavier([16, 8, 3], seed=0).kernel_arrays("float64").conv is None
    for conv, reaches in ((True, True), (None, False)):
        acc, dirty = np.zeros(int(net.offsets[-1])), np.zeros(int(net.block_off[-1]), dtype=bool)
        sops = sent(net._replace(conv=conv), acc, dirty)
        assert (sops > 0) == reaches and acc.any() == reaches and dirty.any() == reaches
