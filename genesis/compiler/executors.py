"""Executors: turn an optimised graph into a callable `run(list of tensors) -> list of tensors`.

- eager: the graph interpreted node by node with the eager kernels;
- numpy: the generated program (fused chunked-numpy kernels + library calls
  for the rest), loaded from the disk cache or generated and stored there;
- triton: the same program with Triton kernels for the groups Triton takes,
  run under Triton's interpreter on host buffers (no device buffers yet);
- c: the same program with C kernels for the groups C takes, compiled by the
  system's C compiler into one shared library and called through ctypes.

All run with autocast off (the graph already holds autocast's casts) and
produce plain result tensors.
"""

from __future__ import annotations

import contextlib
import sys
import warnings

import numpy as np

from genesis import dispatch, dtypes, grad_mode
from genesis.backends import cuda as cuda_switches
from genesis.compiler import cache, interpret, native
from genesis.compiler.codegen import c_backend, triton_backend, triton_matmul, triton_standalone
from genesis.compiler.codegen.wrapper import CODEGEN_VERSION, build_source, plan
from genesis.ops.op import OPS, Kind
from genesis.runtime import cuda as cuda_runtime
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.tensor import Tensor
from genesis.version import __version__


@contextlib.contextmanager
def _plain_eager():
    hook, dispatch.autocast_hook = dispatch.autocast_hook, None
    try:
        with grad_mode.no_grad():
            yield
    finally:
        dispatch.autocast_hook = hook


def eager_executor(graph):
    """The graph node by node with the eager kernels. Grad mode is off as in every executor: a
    compiled program's backward is a graph of its own, and the values it computes (gradients
    included) are plain tensors, never ones with a history."""
    freed = interpret.last_uses(graph)
    stats = {"kernels": 0, "library_calls": len(graph.op_nodes())}

    def run(inputs):
        with _plain_eager():
            return interpret.run(graph, inputs, freed)

    return run, stats


def library_call(graph, node):
    """Run one unfused node with its eager kernel, on arrays; literals go back in their places."""
    op = OPS[node.op]
    slots = [(graph[x].dtype if isinstance(x, str) else None, x) for x in node.inputs]
    attrs = node.attrs
    if op.kind is Kind.VIEW and all(dtype is not None for dtype, _ in slots):
        # a view moves no values and keeps the dtype: its kernel on the arrays is what dispatch would
        # run, without dispatch's dtype rules and tensor wrapping (an unrolled LSTM step has ~200 of
        # them, 10 us each); its buffer must be its own, as below
        def view_call(*arrays):
            return np.array(op.kernel(*arrays, **attrs), copy=True, order="C")

        return view_call

    def call(*arrays):
        values = iter(arrays)
        inputs = [Tensor._make(next(values), dtype) if dtype is not None else literal for dtype, literal in slots]
        return _own_buffer(dispatch.apply(op, *inputs, **attrs)._data, arrays)

    return _direct_call(graph, node, slots, call) or call


def _own_buffer(result, arrays):
    # the memory plan gives every node's value a buffer of its own: a kernel that hands back its
    # input (checked_divisor) or a view of it would share one the plan reuses once the input is dead
    if any(np.may_share_memory(result, array) for array in arrays):
        return result.copy()
    return result


def _direct_call(graph, node, slots, through_dispatch):
    """The node's kernel called on the arrays as they come, where that is all dispatch would do:
    every input already has the op's compute dtype (the graph's casts ran before), the op has no
    generated eager kernel (which dispatch might pick instead), and literals are taken as they are.
    Dispatch's wrapping and dtype rules cost about 10 us a call (an LSTM step makes ~40 such
    calls: its cats and embedding). A kernel that fails goes through dispatch again, which
    explains the failure. None where dispatch does more."""
    op, attrs = OPS[node.op], node.attrs
    if op.generated_eager_from is not None:
        return None
    stand_ins = [
        Tensor._make(np.broadcast_to(np.zeros((), NUMPY_DTYPE[dtype]), graph[x].shape), dtype) if dtype else x
        for dtype, x in slots
    ]
    compute, out_dtype = op.dtype(stand_ins, **attrs)
    if compute is not None and op.upcasts_low_precision:
        compute = dispatch.UPCAST.get(compute, compute)
    literals_as_they_are = compute is None or compute.category != dtypes.INT
    if compute is not None and any(dtype not in (None, compute) for dtype, _ in slots):
        return None
    if not literals_as_they_are and any(dtype is None and type(x) is int for dtype, x in slots):
        return None
    kernel, out_np = op.kernel, NUMPY_DTYPE[out_dtype]
    positions = [i for i, (dtype, _) in enumerate(slots) if dtype is not None]
    template = [None if dtype is not None else x for dtype, x in slots]

    def direct(*arrays):
        arguments = list(template)
        for position, array in zip(positions, arrays):
            arguments[position] = array
        try:
            result = kernel(*arguments, **attrs)
        except Exception:  # noqa: BLE001  (dispatch runs it again and names the problem)
            return through_dispatch(*arrays)
        if type(result) is not np.ndarray:
            result = np.asarray(result)
        if result.dtype != out_np:
            result = result.astype(out_np)
        return _own_buffer(result, arrays)

    return direct


def program_key(graph, backend: str) -> str:
    return cache.key_of(
        graph.signature(),
        backend,
        __version__,
        CODEGEN_VERSION,
        cache.code_hash(),
        np.__version__,
        sys.version_info[:2],
    )


def _cached_source(key, build):
    """The program's source from the disk cache, or built and stored; and whether it was a hit."""
    source = cache.load(key)
    if source is not None:
        return source, True
    source = build()
    cache.store(key, source)
    return source, False


def _runner(graph, namespace, around):
    """run(list of tensors) -> list of tensors for a loaded program; `around()` is the context it runs in."""
    library = [library_call(graph, graph[name]) for name in namespace["LIBRARY"]]
    program = namespace["program"]
    out_dtypes = [graph[name].dtype for name in graph.outputs]
    input_position = {name: i for i, name in enumerate(graph.inputs)}

    def run(inputs):
        with around():
            # a program is a generator yielding its outputs once. CPython 3.11 keeps frames in a stack
            # of 16 KB chunks: a big program's frame (a ResNet-18 step's: 1,576 locals) took a chunk
            # of its own that left no room for the calls it makes, so each of those mapped a fresh
            # chunk and unmapped it on return (~700 page faults a step); a generator's frame lives
            # in the generator object, and its calls stack up in the caller's chunk
            (arrays,) = program([t._data for t in inputs], library)
        # an output that is an input as it is: eager returns that very tensor
        return [
            inputs[input_position[name]] if name in input_position else Tensor._make(array, dtype)
            for name, array, dtype in zip(graph.outputs, arrays, out_dtypes)
        ]

    return run


def device_resident(run, host_round_trips: int = 0):
    """`run` (a program's, with Triton kernels) for tensors on a CUDA device: it computes on the
    device's memory (runtime/cuda.py `device_memory`), and its results are device buffers there.
    An input handed back as it is stays that very tensor; a result that views an input's memory is
    a view there too (not an allocation of its own). Each call counts the program's
    `host_round_trips` (its work that would run on the host: see `triton_executor`)."""

    def on_device(inputs):
        device = next((t.device for t in inputs if t.device.type != "cpu"), None)
        if device is None:
            return run(inputs)
        cuda_runtime.stats.host_round_trips += host_round_trips
        memory = [cuda_runtime.device_memory(t._data) if t.device is device else None for t in inputs]
        stand_ins = [Tensor._make(m, t.dtype) if m is not None else t for m, t in zip(memory, inputs)]
        given = {id(stand_in): t for stand_in, t in zip(stand_ins, inputs)}
        read = [m for m in memory if m is not None]
        results = []
        for out in run(stand_ins):
            if id(out) in given:
                results.append(given[id(out)])
                continue
            views = any(np.may_share_memory(out._data, m) for m in read)
            results.append(Tensor._make(cuda_runtime.adopt(out._data, owns=not views), out.dtype, device))
        return results

    return on_device


def numpy_executor(graph, dump=None, prefix=""):
    key = program_key(graph, "numpy")
    source, cache_hit = _cached_source(key, lambda: build_source(graph).source)
    # a module name under genesis: the runtime's filter then silences numpy's inf/nan warnings here too
    namespace: dict = {"__name__": f"genesis.generated.k{key}"}
    # one blank line stands for the entry's checksum header, so tracebacks point at the right lines
    exec(compile("\n" + source, str(cache.path_of(key)), "exec"), namespace)  # noqa: S102  (our own generated code)
    if dump is not None:
        dump.source(f"{prefix}program.py", source)
    stats = dict(namespace["STATS"], cache_hit=cache_hit, cache_key=key)
    return _runner(graph, namespace, _plain_eager), stats


def triton_executor(graph, dump=None, prefix=""):
    """The generated program with Triton kernels (see codegen/triton_backend.py), run on host
    buffers under Triton's interpreter; groups Triton does not take run as numpy kernels."""
    import triton

    from genesis.runtime.triton_buffers import interpreted_triton_library, triton_interprets

    interpret = triton_interprets()
    if not interpret:
        raise NotImplementedError(
            "genesis.compile(backend='triton'): a CUDA GPU is present, but genesis has no device buffers "
            "yet (tensors live in host numpy arrays); set TRITON_INTERPRET=1 to run the kernels under the "
            "Triton interpreter, or use genesis.compiler.codegen.triton_backend.compile_ptx for PTX"
        )
    key = cache.key_of(
        program_key(graph, "triton"),
        triton.__version__,
        triton_backend.target_name(interpret),
        triton_matmul.FP32_PRECISION[bool(cuda_switches.matmul.allow_tf32)],  # the products' precision is in the source
    )
    built = {}

    def build():
        built["program"] = triton_backend.build_program_source(graph, interpret)
        return built["program"].source

    source, cache_hit = _cached_source(key, build)
    # one blank line stands for the entry's checksum header, so tracebacks point at the right lines
    namespace = triton_backend.load_module("\n" + source, str(cache.path_of(key)), interpret)
    refusals = built["program"].stats["fallbacks"] if built else namespace["FALLBACKS"]
    if dump is not None:
        dump.source(f"{prefix}program.py", source)
        lines = [
            f"{namespace['STATS']['triton_kernels']} Triton kernels ({triton_backend.target_name(interpret)}); "
            f"groups that run as numpy kernels instead:"
        ]
        dump.write(f"{prefix}triton.txt", "\n".join(lines + [f"  {g}: {why}" for g, why in refusals.items()]))
        specs = built["program"].kernels if built else plan(graph).kernels
        for spec in specs:
            if spec.group not in refusals:
                dump.source(f"{prefix}triton/{spec.name}.py", triton_standalone.source(spec))

    @contextlib.contextmanager
    def around():
        # masked-off lanes compute on padding (log(0), 0/0): harmless, and not the user's warnings
        with _plain_eager(), np.errstate(all="ignore"), interpreted_triton_library():
            yield

    run = _runner(graph, namespace, around)
    stats = dict(namespace["STATS"], cache_hit=cache_hit, cache_key=key, backend_refusals=refusals)
    # on a GPU, what runs on the host: numpy kernels (groups Triton refused) and library calls other
    # than products (cuBLAS) and views (no values move)
    on_host = [name for name in namespace["LIBRARY"] if OPS[graph[name].op].kind not in (Kind.MATMUL, Kind.VIEW)]
    stats["host_round_trips"] = len(refusals) + len(on_host)
    return run, stats


def c_executor(graph, dump=None, prefix=""):
    """The generated program with C kernels (see codegen/c_backend.py) for the groups C takes,
    compiled into one shared library; the other groups run as numpy kernels."""
    key = cache.key_of(program_key(graph, "c"), native.machine_signature())
    built = {}

    def build():
        built["program"] = c_backend.build_program_source(graph)
        return built["program"].source

    namespace: dict = {"__name__": f"genesis.generated.c{key}"}
    try:
        source, cache_hit = _cached_source(key, build)
        # one blank line stands for the entry's checksum header, so tracebacks point at the right lines
        exec(compile("\n" + source, str(cache.path_of(key)), "exec"), namespace)  # noqa: S102  (our own code)
        if namespace["SIGNATURES"]:
            namespace["NATIVE"] = native.load(namespace["C_SOURCE"], namespace["SIGNATURES"], namespace["NATIVE_KEY"])
            native.thread_pool()  # loaded now, the products run on it too (ops/gemm.py) from the first step
    # never lose the user's run to a codegen bug, or to a full disk: numpy kernels
    except (native.CompileFailed, native.NoPlaceForLibrary) as error:
        warnings.warn(f"{error}\ngenesis: running this program's kernels as numpy kernels instead", stacklevel=2)
        run, stats = numpy_executor(graph, dump, prefix)
        return run, dict(stats, c_failed=str(error).splitlines()[0])
    refusals = namespace["FALLBACKS"]
    if dump is not None:
        dump.source(f"{prefix}program.py", source)
        dump.source(f"{prefix}kernels.c", namespace["C_SOURCE"])
        lines = [f"{namespace['STATS']['c_kernels']} C kernels; groups that run as numpy kernels instead:"]
        dump.write(f"{prefix}c.txt", "\n".join(lines + [f"  {g}: {why}" for g, why in refusals.items()]))
    stats = dict(namespace["STATS"], cache_hit=cache_hit, cache_key=key, backend_refusals=refusals)
    return _runner(graph, namespace, _plain_eager), stats
