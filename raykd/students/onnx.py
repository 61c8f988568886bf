"""The students as ONNX Runtime graphs: the same weights, a fused LSTM kernel instead of PyTorch's step loop.

PyTorch runs a CPU LSTM one time step at a time (a dozen small kernels per step and direction), which
dominates a tiny student's inference; ONNX Runtime's `LSTM` op runs the whole recurrence in one kernel and
takes each sequence's length, so padding never enters it (the same guarantee packing gives in PyTorch).
The graph is written here from the trained modules, op for op:

    ids (B, T) ──Gather(embedding)──> x ──LSTM(bidirectional, sequence_lens = #non-pad ids)──> states (B, T, 2H)
    h = (masked mean over T + masked max over T) / 2                                  (LSTMStudent.encode)
    LSTM student:  logits = h W_head + b
    pair student:  u, v = h over the response side, over the reference side (split at <sep> by CumSum)
                   logits = [u, v, |u - v|, u * v] W_head + b                         (PairStudent.features)
    MoE student:   gate = softmax([h ; task_embedding] W_g + b_g)
                   z = h + sum_i gate_i * expert_i(h),  expert_i = Linear -> GELU -> Linear
                   logits = z W_head + b                                                   (MoEStudent.forward)

It is written by hand because torch.onnx's TorchScript exporter mistranslates the packed MoE encoder (outputs
off by up to 0.8 on a real student) and its dynamo exporter unrolls the LSTM into a loop. `tests/students`
checks the graph against the PyTorch module on real and random inputs. Eval-mode only (dropout is identity).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # building a graph needs the PyTorch modules; running one needs only onnxruntime
    import torch

    from raykd.students.lstm import LSTMStudent

OPSET = 20  # Gelu is a standard op from opset 20
TORCH_TO_ONNX_GATES = (0, 3, 1, 2)  # PyTorch packs gates i, f, g, o; ONNX expects i, o, f, c


class _Graph:
    """A tiny builder: named initialisers and nodes, each call returning its output name."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        arr = np.asarray(value)
        arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr.astype(np.int64)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output

    def linear(self, x: str, layer: torch.nn.Linear, name: str) -> str:
        w = self.const(f"{name}.weight", layer.weight.detach().numpy().T)
        b = self.const(f"{name}.bias", layer.bias.detach().numpy())
        return self.op("Add", [self.op("MatMul", [x, w], f"{name}.mm"), b], name)


def _lstm_weights(lstm: torch.nn.LSTM, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX W (D, 4H, in), R (D, 4H, H), B (D, 8H) of one layer, directions stacked forward then reverse."""
    hidden = lstm.hidden_size
    params = {k: v.detach().numpy() for k, v in lstm.named_parameters()}

    def gates(w: np.ndarray) -> np.ndarray:
        return np.concatenate([w[g * hidden:(g + 1) * hidden] for g in TORCH_TO_ONNX_GATES], axis=0)

    suffixes = ("", "_reverse") if lstm.bidirectional else ("",)
    w = [gates(params[f"weight_ih_l{layer}{s}"]) for s in suffixes]
    r = [gates(params[f"weight_hh_l{layer}{s}"]) for s in suffixes]
    b = [np.concatenate([gates(params[f"bias_ih_l{layer}{s}"]), gates(params[f"bias_hh_l{layer}{s}"])])
         for s in suffixes]
    return np.stack(w), np.stack(r), np.stack(b)


def _states(g: _Graph, enc: LSTMStudent) -> str:
    """LSTMStudent.states: embedding, packed (B)LSTM -> (B, T, D*H), zero past each length. Also defines `is_real`
    (B, T): the non-padding ids, and the constants `_pool` and `_pair_features` use."""
    lstm = enc.lstm
    width = lstm.hidden_size * (2 if lstm.bidirectional else 1)
    g.const("zero", 0)
    g.const("zero_f", 0.0)
    g.const("one", 1.0)
    g.const("half", 0.5)
    g.const("masked_out", -1e4)  # lstm.pool fills masked steps with -1e4 before the max
    g.const("axis_t", [1])
    g.const("axis_last", [-1])
    x = g.op("Gather", [g.const("embed.weight", enc.embed.weight.detach().numpy()), "ids"], "embedded")
    real = g.op("Not", [g.op("Equal", ["ids", "zero"], "is_pad")], "is_real")  # (B, T)
    count = g.op("ReduceSum", [g.op("Cast", [real], "real_i64", to=7), "axis_t"], "count", keepdims=0)
    # PyTorch clamps lengths to >= 1 (an all-padding row still runs one step); so does this graph.
    lengths = g.op("Cast", [g.op("Max", [count, g.const("one_i64", 1)], "count1")], "lengths", to=6)
    seq = g.op("Transpose", [x], "time_major", perm=[1, 0, 2])  # (T, B, E)
    for layer in range(lstm.num_layers):
        w, r, b = _lstm_weights(lstm, layer)
        y = g.op("LSTM", [seq, g.const(f"lstm.W{layer}", w), g.const(f"lstm.R{layer}", r),
                          g.const(f"lstm.B{layer}", b), lengths], f"lstm.y{layer}",
                 direction="bidirectional" if lstm.bidirectional else "forward", hidden_size=lstm.hidden_size)
        # (T, D, B, H) -> (T, B, D*H): the next layer's input, or the states
        y = g.op("Transpose", [y], f"lstm.y{layer}.t", perm=[0, 2, 1, 3])
        seq = g.op("Reshape", [y, g.const(f"lstm.shape{layer}", [0, 0, width])], f"lstm.out{layer}")
    return g.op("Transpose", [seq], "states", perm=[1, 0, 2])  # (B, T, D*H); zero past each length


def _encoder(g: _Graph, enc: LSTMStudent) -> str:
    """LSTMStudent.encode: the states pooled over the real tokens -> (B, D*H)."""
    return _pool(g, _states(g, enc), "is_real", "h")


def _pool(g: _Graph, states: str, side: str, name: str) -> str:
    """raykd.students.lstm.pool: (masked mean + masked max) / 2 over the (B, T) mask `side`; 0 where it is
    empty."""
    mask = g.op("Unsqueeze", [side, "axis_last"], f"{name}.mask")
    maskf = g.op("Cast", [mask], f"{name}.mask_f", to=1)
    count = g.op("ReduceSum", [maskf, "axis_t"], f"{name}.n", keepdims=0)  # (B, 1)
    total = g.op("ReduceSum", [g.op("Mul", [states, maskf], f"{name}.masked"), "axis_t"], f"{name}.sum", keepdims=0)
    mean = g.op("Div", [total, g.op("Max", [count, "one"], f"{name}.n1")], f"{name}.mean")
    filled = g.op("Where", [mask, states, "masked_out"], f"{name}.filled")
    peak = g.op("ReduceMax", [filled, "axis_t"], f"{name}.max", keepdims=0)
    present = g.op("Cast", [g.op("Greater", [count, "zero_f"], f"{name}.any")], f"{name}.any_f", to=1)
    return g.op("Mul", [g.op("Add", [mean, g.op("Mul", [peak, present], f"{name}.peak")], f"{name}.sum2"), "half"],
                name)


def _pair_features(g: _Graph, model: torch.nn.Module) -> str:
    """PairStudent.features: the sides split at the first and second <sep> (raykd.students.pair.side_masks),
    each pooled, then [u, v, |u - v|, u * v]."""
    from raykd.students.vocab import SEP_ID

    states = _states(g, model)
    is_sep = g.op("Equal", ["ids", g.const("sep_id", SEP_ID)], "is_sep")
    segment = g.op("CumSum", [g.op("Cast", [is_sep], "is_sep_i64", to=7), g.const("axis_t_scalar", 1)], "segment")
    content = g.op("And", ["is_real", g.op("Not", [is_sep], "not_sep")], "content")
    response = g.op("And", [content, g.op("Equal", [segment, "zero"], "seg0")], "response_side")
    reference = g.op("And", [content, g.op("Equal", [segment, "one_i64"], "seg1")], "reference_side")
    u = _pool(g, states, response, "u")
    v = _pool(g, states, reference, "v")
    diff = g.op("Abs", [g.op("Sub", [u, v], "u_minus_v")], "abs_diff")
    return g.op("Concat", [u, v, diff, g.op("Mul", [u, v], "u_times_v")], "pair_features", axis=-1)


def to_onnx(model: torch.nn.Module) -> bytes:
    """The eval-mode student as a serialized ONNX model: inputs `ids` (B, T) and `task_ids` (B,), int64;
    output `logits` (B, outputs)."""
    import onnx
    from onnx import TensorProto, helper

    from raykd.students.lstm import LSTMStudent
    from raykd.students.moe import MoEStudent
    from raykd.students.pair import PairStudent

    g = _Graph()
    if isinstance(model, PairStudent):
        g.linear(_pair_features(g, model), model.head, "logits")
    elif isinstance(model, LSTMStudent):
        g.linear(_encoder(g, model), model.head, "logits")
    elif isinstance(model, MoEStudent):
        h = _encoder(g, model.encoder)
        task = g.op("Gather", [g.const("task_embed.weight", model.task_embed.weight.detach().numpy()), "task_ids"],
                    "task_vec")
        gate = g.op("Softmax", [g.linear(g.op("Concat", [h, task], "gate_in", axis=-1), model.gate, "gate_logits")],
                    "gate", axis=-1)
        experts = []
        for i, expert in enumerate(model.experts):
            inner = g.op("Gelu", [g.linear(h, expert[0], f"expert{i}.in")], f"expert{i}.gelu")  # exact (erf) GELU
            experts.append(g.op("Unsqueeze", [g.linear(inner, expert[3], f"expert{i}.out"), "axis_t"], f"expert{i}"))
        stacked = g.op("Concat", experts, "experts", axis=1)  # (B, N, W)
        weights = g.op("Unsqueeze", [gate, "axis_last"], "gate_w")
        mixed = g.op("ReduceSum", [g.op("Mul", [stacked, weights], "weighted"), "axis_t"], "mixed", keepdims=0)
        g.linear(g.op("Add", [h, mixed], "z"), model.head, "logits")
    else:
        raise TypeError(f"no ONNX graph for {type(model).__name__}")
    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "time"]),
         helper.make_tensor_value_info("task_ids", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", model.spec.num_outputs])], g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="raykd")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class OnnxStudent:
    """Runs a student's ONNX graph on CPU: `logits(ids, task_ids)` with numpy int64 inputs. `graph` is a
    serialized graph (`to_onnx`, saved as student.onnx) or the PyTorch module to translate."""

    def __init__(self, graph: bytes | torch.nn.Module, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # serving and Ray Data give each scorer its own core(s)
        options.inter_op_num_threads = 1
        serialized = graph if isinstance(graph, bytes) else to_onnx(graph)
        self.session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])

    def logits(self, ids: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"ids": ids, "task_ids": task_ids})[0]


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
