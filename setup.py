"""Build the Cython kernels under src/hetred/_ext with no manual step.

Every ``*.pyx`` file in ``src/hetred/_ext`` becomes ``hetred._ext.<name>``.
"""
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

EXT_DIR = Path("src/hetred/_ext")
extensions = [
    Extension(
        f"hetred._ext.{pyx.stem}",
        [str(pyx)],
        include_dirs=[numpy.get_include(), str(EXT_DIR)],
        extra_compile_args=["-O3"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in sorted(EXT_DIR.glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
)
