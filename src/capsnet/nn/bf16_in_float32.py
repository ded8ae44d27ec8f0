"""bfloat16 matmuls and convolutions computed in float32, for compiled bf16 training on CPUs without
bfloat16 instructions.

Under bf16 autocast a matmul rounds its operands to bf16, multiplies them exactly, sums the products in
float32 and rounds the result to bf16. A CPU with AVX-512 BF16 or AMX does that in hardware; one without
(an AVX2-only x86 CPU) runs oneDNN's bf16 kernels dozens of times slower than its float32 ones, though
a bf16 number converts to float32 exactly. So where bf16 is slow the same products are computed as

    y = bf16( float32(a) @ float32(b) )      a, b: the bf16 operands

exact products, float32 sums, one rounding of each result: as close to the float32 result as the bf16
kernel's (tests). Only the matmuls and convolutions change; every other operation, and every tensor the
network keeps, stays as bf16 autocast makes it.

``BF16InFloat32`` is an inductor graph pass (``torch._inductor.config.post_grad_custom_post_pass``)
over the compiled forward and backward graphs: each bf16 CPU ``mm``, ``addmm``, ``bmm``, ``baddbmm``,
``convolution`` and ``convolution_backward`` node gets float32 operands and a bf16 result; inductor
fuses the conversions into the kernels around them, each rounding kept (``settings``). A compiled bf16
run on a CPU whose bf16 is slow (``capsnet.nn.bfloat16_speed``) puts it in place (``install``), and the
PrimaryCaps layer, which picks its form by the dtype its products are computed in, then takes its
float32 one (``capsnet.nn.conv``). Eager bf16 keeps oneDNN's kernels.

Importing this module imports inductor (and Triton, where it is installed): its users import it once a
run compiles, after ``skip_triton_on_cpu``.
"""

import torch
import torch._inductor.config
from torch._guards import detect_fake_mode
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

aten, prims = torch.ops.aten, torch.ops.prims
MATMULS = (
    aten.mm.default,
    aten.addmm.default,
    aten.bmm.default,
    aten.baddbmm.default,
    aten.convolution.default,
    aten.convolution_backward.default,
)


def _value(node):
    return node.meta.get("val") if isinstance(node, torch.fx.Node) else node


def _is_bf16_cpu(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16 and value.device.type == "cpu"


def _convert(graph: torch.fx.Graph, node: torch.fx.Node, dtype: torch.dtype) -> torch.fx.Node:
    converted = graph.call_function(prims.convert_element_type.default, (node, dtype))
    converted.meta["val"] = node.meta["val"].to(dtype)
    return converted


def _read_rounded(graph: torch.fx.Graph, node: torch.fx.Node) -> None:
    """Every user of ``node`` reads it rounded to bf16."""
    with graph.inserting_after(node):
        rounded = _convert(graph, node, torch.bfloat16)
    node.replace_all_uses_with(rounded, delete_user_cb=lambda user: user is not rounded)


class BF16InFloat32(CustomGraphPass):
    """Rewrites a compiled graph's bf16 CPU matmuls and convolutions to float32 ones with bf16 results."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        for node in list(graph.nodes):
            if node.op == "call_function" and node.target in MATMULS:
                self._in_float32(graph, node)

    @staticmethod
    def _in_float32(graph: torch.fx.Graph, node: torch.fx.Node) -> None:
        operands = [arg for arg in node.all_input_nodes if _is_bf16_cpu(_value(arg))]
        if not operands:
            return
        with graph.inserting_before(node):
            upcast = {arg: _convert(graph, arg, torch.float32) for arg in operands}
        node.args = torch.fx.map_arg(node.args, lambda arg: upcast.get(arg, arg))
        node.kwargs = torch.fx.map_arg(node.kwargs, lambda arg: upcast.get(arg, arg))
        with detect_fake_mode([node.meta["val"]]):  # the node's new outputs: float32
            args, kwargs = torch.fx.map_arg((node.args, node.kwargs), _value)
            value = node.target(*args, **kwargs)
        # Its results as the graph reads them (a tuple's items through getitem), rounded back to bf16.
        if isinstance(value, torch.Tensor):
            outputs = {node: value}
        else:
            outputs = {item: value[item.args[1]] for item in node.users}
        was_bf16 = {output: _is_bf16_cpu(output.meta["val"]) for output in outputs}
        node.meta["val"] = value
        for output, output_value in outputs.items():
            output.meta["val"] = output_value
            if was_bf16[output]:
                _read_rounded(graph, output)

    def uuid(self):
        return get_hash_for_files((__file__,))


def settings(graph_pass: BF16InFloat32 | None = None) -> dict:
    """The inductor settings that compute bf16's products in float32 with bf16 autocast's roundings: the
    pass, and every conversion to bf16 rounded as written (inductor otherwise skips the rounding of a
    bf16 value that a fused kernel converts back to float32, such as a weight's, before a matmul)."""
    return {"post_grad_custom_post_pass": graph_pass or BF16InFloat32(), "emulate_precision_casts": True}


def install() -> None:
    """Puts the settings in place for every graph this process compiles from now on (a run's test too)."""
    for name, value in settings().items():
        setattr(torch._inductor.config, name, value)


def installed() -> bool:
    return isinstance(torch._inductor.config.post_grad_custom_post_pass, BF16InFloat32)
