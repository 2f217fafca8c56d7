"""Building C kernels into a shared library with the system's C compiler, cached on disk.

The compiler is `GENESIS_CC`, else the first of cc, gcc and clang on PATH.
Flags: -O3 for this machine's vector units (-march=native, 256-bit vectors
preferred where it has them), without errno
from math functions (so they vectorise), without floating-point traps (so
a division or conversion under a select may run on every lane: a loop with
one vectorises; the values are IEEE's either way, and nothing reads the
exception flags), without contracting a*b+c into an FMA (so results round as
eager's do), with wrapping signed integers (numpy's
overflow), and OpenMP's SIMD pragmas (reductions vectorise) but no OpenMP
runtime. Where glibc's libmvec is found, loops with exp, tanh, ... call its
SIMD versions.

A big source compiles in parts, one per core, in parallel: each part is the
source's preamble (includes and static helpers) with a share of the kernels,
which the program template separates by KERNEL_SEPARATOR; the linker joins
them. gcc's time goes into optimising the kernels, so two cores halve it.

A library is cached as `<key>.so` next to the program sources, the key
hashing the C source, the compiler and its flags. Its SHA-256 goes in a
sidecar file `<key>.so.sha256`, written after it; a library whose bytes do
not match, or that cannot be read (see `cache` for what counts), is rebuilt
with one warning, never loaded. Both are written to a temporary name and
renamed, so another process sees all of a file or none: the library is
built in a temporary folder in the cache (named after its writer, so that a
build killed half-way is removed by a later one) and renamed out of it.
Where the cache cannot take the library, it is built in a temporary folder
of the system's, loaded, and the folder removed at once (a loaded library
stays mapped): the process keeps it in memory, by its key.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from genesis.compiler import cache
from genesis.compiler.dump import write_atomic
from genesis.compiler.templates import render
from genesis.runtime import native as runtime_native
from genesis.serialization.atomic import make_temporary_folder, remove_stale_temporaries
from genesis.version import __version__

FLAGS = (
    "-O3",
    "-std=gnu11",
    "-fPIC",
    "-shared",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",
    "-fwrapv",
    "-fopenmp-simd",
    "-w",
)
# math functions whose libmvec SIMD versions (float and double) genesis declares for the vectoriser
VECTOR_FUNCTIONS = ("exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "erf")
# where the compiler takes them: this machine's instructions, and 256-bit vectors where it has them.
# gcc 12 takes an AVX2 EPYC in a VM for Zen 1, whose tuning prefers 128-bit vectors: exp, log and tanh
# of 1M floats ran 10-30% slower (training steps, GEMM-bound, no different; AVX-512 tunings prefer 256)
_MACHINE_FLAGS = ("-march=native", "-mprefer-vector-width=256")
COMPILERS = ("cc", "gcc", "clang")  # looked for on PATH, in order, unless GENESIS_CC names one
KERNEL_SEPARATOR = "/* ---- genesis: one kernel ---- */"  # precedes each kernel in a program's C source
# a part gets kernels until it holds at least this many characters of them: below, a part's own
# start-up (parsing the preamble, a process) costs more than sharing the work saves
PART_CHARACTERS = 4000
_ARGUMENT_TYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int64}


class CompilerError(RuntimeError):
    """No C compiler, or the compiler failed."""


class CompileFailed(CompilerError):
    """The compiler rejected generated C: a bug in genesis, which then runs numpy kernels instead."""


class NoPlaceForLibrary(CompilerError):
    """Neither the cache nor a temporary folder can take a compiled library: numpy kernels run instead."""


@dataclass(frozen=True)
class Compiler:
    path: str
    version: str
    flags: tuple
    vector_math: bool  # glibc's libmvec is there: declare SIMD math functions


def find_compiler() -> Compiler | None:
    """The C compiler genesis uses (GENESIS_CC, else cc, gcc or clang on PATH), or None."""
    return _find_compiler(os.environ.get("GENESIS_CC", ""), os.environ.get("PATH", ""))


def compiler_available() -> bool:
    """Whether find_compiler would find one: only a PATH lookup, so a process that loads its programs
    from the disk cache never runs the compiler's probes (about 0.1 s)."""
    configured = os.environ.get("GENESIS_CC", "")
    return any(shutil.which(name) for name in ([configured] if configured else COMPILERS))


@functools.cache
def _find_compiler(configured: str, search_path: str) -> Compiler | None:
    for name in [configured] if configured else COMPILERS:
        path = shutil.which(name, path=search_path or None)
        if path is None:
            continue
        try:
            version = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            continue
        flags = FLAGS + tuple(flag for flag in _MACHINE_FLAGS if _accepts(path, flag))
        vector_math = "clang" not in version.lower() and _has_libmvec(path)
        if vector_math:  # hand-written sources (ops/native) declare its functions under this macro
            flags += ("-DG_LIBMVEC",)
        return Compiler(path, version, flags, vector_math)
    return None


def compiler_or_error() -> Compiler:
    compiler = find_compiler()
    if compiler is None:
        configured = os.environ.get("GENESIS_CC")
        where = (
            f"GENESIS_CC={configured!r} is not an executable C compiler"
            if configured
            else "no C compiler (cc, gcc or clang) on PATH"
        )
        raise CompilerError(
            f"genesis.compile(backend='c'): {where}; install one, set GENESIS_CC, or use backend='numpy'"
        )
    return compiler


def _accepts(path: str, flag: str) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "probe.c"
        source.write_text("int genesis_probe(void) { return 0; }\n")
        result = subprocess.run(
            [path, flag, "-c", str(source), "-o", str(Path(folder) / "probe.o")],
            capture_output=True,
            timeout=60,
            check=False,
        )
        return result.returncode == 0


def _has_libmvec(path: str) -> bool:
    result = subprocess.run(
        [path, "-print-file-name=libmvec.so"], capture_output=True, text=True, timeout=30, check=False
    )
    found = result.stdout.strip()
    return result.returncode == 0 and os.path.isabs(found) and os.path.exists(found)


@functools.lru_cache(maxsize=1)
def machine_signature() -> str:
    """What decides whether a library built here runs elsewhere: the CPU's architecture and features
    (-march=native code may use instructions another CPU lacks), so a shared cache stays safe."""
    features = ""
    try:
        with open("/proc/cpuinfo") as info:
            features = next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return cache.key_of(platform.machine(), platform.system(), features, last_level_cache_bytes())


@functools.cache
def last_level_cache_bytes() -> int:
    """The size of the CPU's largest cache, from Linux's sysfs; 32 MiB where that cannot be read.
    Kernels stream their outputs past the caches when they move more than this (`c_loops.py`)."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=32 << 20)


def library_key(source: str, compiler: Compiler) -> str:
    return cache.key_of("c-library", source, compiler.version, compiler.flags, compiler.vector_math)


def _library_path(key: str) -> Path:
    return cache.cache_dir() / f"{key}.so"


def _checksum_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


_MISSING = "missing"  # nothing to warn about: never built, or a crash before the checksum was written


def _library_problem(path: Path) -> tuple[Path, str] | None:
    """None if the cached library at `path` is whole, else (the file at fault, why)."""
    checksum = _checksum_path(path)
    contents = {}
    for entry in (path, checksum):
        try:
            contents[entry] = entry.read_bytes()
        except OSError as error:
            return entry, _MISSING if cache.missing(entry, error) else cache.unreadable(error)
    # compared as bytes: a checksum file that is not even text is simply a mismatch
    if hashlib.sha256(contents[path]).hexdigest().encode() != contents[checksum].strip():
        return path, f"checksum mismatch with {checksum.name}"
    return None


def build_library(source: str, compiler: Compiler, key: str) -> None:
    """Make the library for `source` loadable by `key` (`open_library`): found whole in the cache, else
    compiled now into it; where the cache cannot take it, compiled elsewhere and kept loaded."""
    if key in _KEPT_LOADED:
        return
    path = _library_path(key)
    problem = _library_problem(path)
    if problem is None:
        return
    if problem[1] != _MISSING:
        cache.warn_dropped(*problem)
    checksum = _checksum_path(path)
    for entry in (path, checksum):
        cache.clear_directory(entry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent, folders=True)
        folder = Path(make_temporary_folder(path.parent, path.name))
        try:
            built = _compile(source, compiler, folder, path.name)
            digest = hashlib.sha256(built.read_bytes()).hexdigest()
            os.replace(built, path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        write_atomic(checksum, digest + "\n", folders=True)
    except OSError as error:  # no permission, a read-only or full file system: the cache cannot take it
        cache.warn_unwritable(error)
        _build_elsewhere(source, compiler, key, error)


# libraries that the cache could not take, by key: loaded from a folder since removed, kept for the process
_KEPT_LOADED: dict[str, ctypes.CDLL] = {}


def _build_elsewhere(source: str, compiler: Compiler, key: str, cache_error: OSError) -> None:
    try:
        with tempfile.TemporaryDirectory(prefix="genesis-", ignore_cleanup_errors=True) as folder:
            _KEPT_LOADED[key] = ctypes.CDLL(str(_compile(source, compiler, Path(folder), f"{key}.so")))
    except OSError as error:
        raise NoPlaceForLibrary(
            f"genesis: no place to write a C library: the kernel cache {cache.cache_dir()} "
            f"({cache_error.strerror or cache_error}) nor a temporary folder "
            f"({error.strerror or error})"
        ) from error


def _compile(source: str, compiler: Compiler, folder: Path, name: str) -> Path:
    """Compile `source` in `folder` into the shared library `folder / name`."""
    objects = []
    compiling = []
    for index, part in enumerate(_parts(source)):
        c_file, objects_file = folder / f"part{index}.c", folder / f"part{index}.o"
        c_file.write_text(part)
        objects.append(str(objects_file))
        compiling.append(
            subprocess.Popen(
                [compiler.path, *compiler.flags, "-c", str(c_file), "-o", str(objects_file)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for process in compiling:
            try:
                _, errors = process.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                process.kill()
                _, errors = process.communicate()
            _check(compiler, process.returncode, errors)
    finally:  # a part that failed leaves no compiler running on the others
        for process in compiling:
            if process.poll() is None:
                process.kill()
                process.wait()
    built = folder / name
    command = [compiler.path, *compiler.flags, *objects, "-o", str(built)]
    command += ["-lmvec", "-lm"] if compiler.vector_math else ["-lm"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    _check(compiler, result.returncode, result.stderr)
    return built


def open_library(key: str) -> ctypes.CDLL:
    """The library built under `key`: the one this process keeps loaded, else the cache's."""
    return _KEPT_LOADED[key] if key in _KEPT_LOADED else ctypes.CDLL(str(_library_path(key)))


def _parts(source: str) -> list[str]:
    """The source as translation units to compile at once: the preamble, then kernels shared out
    (longest first, each to the part holding the least) over up to one part per core."""
    preamble, *kernels = source.split(KERNEL_SEPARATOR)
    count = max(1, min(os.cpu_count() or 1, sum(map(len, kernels)) // PART_CHARACTERS, len(kernels)))
    if count == 1:
        return [source]
    shares = [[] for _ in range(count)]
    for kernel in sorted(kernels, key=len, reverse=True):
        min(shares, key=lambda share: sum(map(len, share))).append(kernel)
    return [preamble + "".join(share) for share in shares]


def _check(compiler: Compiler, returncode: int, stderr: str) -> None:
    if returncode != 0:
        raise CompileFailed(
            f"genesis: {compiler.path} failed on generated C (a bug in genesis's C codegen):\n{stderr[-4000:]}"
        )


class NativeLibrary:
    """A loaded library: its kernels as attributes, with their argument types set; where a kernel
    has a `_chunk` entry for the thread pool, that entry's address as `<name>_chunk`."""

    def __init__(self, library: ctypes.CDLL, signatures: dict):
        self._library = library
        for name, signature in signatures.items():
            function = getattr(self._library, name)
            function.argtypes = [_ARGUMENT_TYPES[code] for code in signature]
            function.restype = ctypes.c_int  # 0, or 1 when the kernel's scratch could not be allocated
            setattr(self, name, function)
            entry = getattr(self._library, f"{name}_chunk", None)
            setattr(self, f"{name}_chunk", None if entry is None else ctypes.cast(entry, ctypes.c_void_p).value)


@functools.cache
def thread_pool() -> NativeLibrary | None:
    """The library of `g_pool_run` (templates/c_pool.c.j2), built once per machine and cached like a
    program's; None where it cannot be had (not in the cache, and no compiler to build it), and
    kernels then share their chunks through Python's threads. Its cache key names the source and
    the machine, not the compiler, so a process that finds it cached runs no compiler probe."""
    source = render("c_pool.c.j2", version=__version__)
    try:
        library = load(source, {}, key=cache.key_of("c-pool", source, machine_signature()))
    except CompileFailed as error:
        warnings.warn(
            f"genesis: no C thread pool ({error}); kernels share their chunks through Python's threads", stacklevel=2
        )
        return None
    except (CompilerError, OSError):  # no compiler here: the program's kernels came from the disk cache
        return None
    run = library._library.g_pool_run
    run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
    run.restype = ctypes.c_int
    library.run = run
    return library


def op_kernels(source: str, signatures: dict) -> NativeLibrary | None:
    """A library of ops' hand-written C kernels (ops/native/*.c), built and cached as the thread
    pool is; None where it cannot be had (the ops then run their numpy kernels)."""
    try:
        return load(source, signatures, key=cache.key_of("c-op-kernels", source, machine_signature()))
    except CompileFailed as error:
        warnings.warn(f"genesis: ops run their numpy kernels ({error})", stacklevel=2)
        return None
    except (CompilerError, OSError):  # no compiler here, and the library is not in the cache
        return None


def load(source: str, signatures: dict, key: str | None = None) -> NativeLibrary:
    """Compile (or find in the cache) and load `source`; `key` is the library key recorded at build time."""
    if key is None or (key not in _KEPT_LOADED and _library_problem(_library_path(key)) is not None):
        compiler = compiler_or_error()  # build_library warns about a damaged library and rebuilds it
        key = key or library_key(source, compiler)
        build_library(source, compiler, key)
    return NativeLibrary(open_library(key), signatures)


runtime_native.provide_thread_pool(thread_pool)
runtime_native.provide_library_builder(op_kernels)
