"""Build fastnn's Cython extensions (the ``cython`` backend, ``fastnn._kernels.cython``).

They are optional: where they cannot be built (no C compiler, a failed
compile) the install goes on without them, prints one warning, and fastnn
runs on its numba or numpy backend.  OpenMP is probed by compiling a tiny
program; without it the same ``.pyx`` sources build serially (Cython guards
its OpenMP pragmas with ``#ifdef _OPENMP``) and a loud warning is printed.  Shipped builds use ``-O3`` only:
no ``-march=native`` and no ``-ffast-math``.

Set ``FASTNN_CYTHON_DEBUG=1`` to build with bounds checking and wraparound on.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# What a missing or failing C compiler raises while the extensions build.
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
    """
)


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None if it does not build."""
    if sys.platform == "win32":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    for cflags, lflags in candidates:
        tmp = tempfile.mkdtemp()
        try:
            src = os.path.join(tmp, "omp_test.c")
            with open(src, "w") as f:
                f.write(OPENMP_TEST)
            cc = new_compiler()
            customize_compiler(cc)
            objs = cc.compile([src], output_dir=tmp, extra_postargs=cflags)
            cc.link_executable(objs, os.path.join(tmp, "omp_test"), extra_postargs=lflags)
            return cflags, lflags
        except Exception:  # noqa: BLE001 - any failure means "no OpenMP"
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return None


def loud(message):
    print("\n" + "!" * 72 + "\n" + message + "\n" + "!" * 72 + "\n", file=sys.stderr)


class BuildExt(build_ext):
    """build_ext that adds the OpenMP flags and never fails the install: an extension
    that does not build is left out, with one warning for them all."""

    def run(self):
        self.failures = []
        try:
            super().run()
        except BUILD_ERRORS as exc:  # e.g. no compiler at all
            self.failures.append(exc)
        if self.failures:
            loud(
                f"WARNING: fastnn: the Cython kernels could not be built ({self.failures[0]}); "
                "fastnn will use the numba or numpy backend."
            )

    def build_extensions(self):
        flags = openmp_flags()
        for ext in self.extensions:
            if flags is not None:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
        super().build_extensions()
        if flags is None and not self.failures:
            loud("WARNING: OpenMP not found; fastnn's Cython kernels are built single-threaded.")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as exc:
            self.failures.append(exc)


debug = os.environ.get("FASTNN_CYTHON_DEBUG", "0") == "1"
directives = {
    "language_level": "3",
    "boundscheck": debug,
    "wraparound": debug,
    "cdivision": not debug,
    "initializedcheck": debug,
}
compile_args = ["-O3"] if sys.platform != "win32" else ["/O2"]
define_macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]


# The Cython backend's package and its extension modules.
PACKAGE = "fastnn._kernels.cython"
PACKAGE_DIR = PACKAGE.replace(".", "/")
def write_generated_sources():
    """Generate the Cython sources that fastnn/_kernels/codes.py defines: the codes as C
    enums and the elementwise activations' row loops (from their formulas)."""
    import runpy

    kernels = os.path.join("fastnn", "_kernels")
    codes = runpy.run_path(os.path.join(kernels, "codes.py"))
    formulas = runpy.run_path(os.path.join(kernels, "formulas.py"))
    names = dict(enumerate(codes["ACTIVATIONS"]))
    generated = {
        "_codes.pxd": codes["cython_declarations"](),
        "_elementwise.h": formulas["c_rows"](codes["ELEMENTWISE"], names, codes["SOFTMAX"]),
    }
    for name, text in generated.items():
        path = os.path.join(kernels, "cython", name)
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as f:
                f.write(text)


write_generated_sources()
CYTHON_MODULES = ["_blas", "_dense", "_losses", "_optimizers", "_training", "_predict", "_sparse"]
# C headers a module includes (rebuilt when they change).
ACTIVATION_HEADERS = ["_elementwise.h", "_simd_math.h", "_simd_level.h"]
HEADERS = {"_dense": ["_simd_gemm.h", *ACTIVATION_HEADERS], "_optimizers": ["_simd_loops.h"],
           "_sparse": ["_simd_rows.h", *ACTIVATION_HEADERS], "_predict": ["_simd_finite.h", *ACTIVATION_HEADERS],
           "_training": ["_simd_finite.h", *ACTIVATION_HEADERS], "_losses": ACTIVATION_HEADERS}


def extension(name):
    return Extension(
        f"{PACKAGE}.{name}",
        [f"{PACKAGE_DIR}/{name}.pyx"],
        include_dirs=[np.get_include()],
        extra_compile_args=list(compile_args),
        extra_link_args=[],
        define_macros=define_macros,
        depends=[f"{PACKAGE_DIR}/{header}" for header in HEADERS.get(name, ())],
        optional=True,  # see BuildExt
    )


setup(
    ext_modules=cythonize(
        [extension(name) for name in CYTHON_MODULES],
        compiler_directives=directives,
    ),
    cmdclass={"build_ext": BuildExt},
)
