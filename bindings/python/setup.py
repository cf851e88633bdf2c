"""Build of the rpcnet Python binding.

build_ext runs SWIG on swig/rpcnet.i (the generated rpcnet/_rpcnet_c.py goes
into the build tree next to the extension) and links against the C library,
found in this order:

  1. RPCNET_BUILD_DIR: a CMake build tree of this repository (headers from
     the source tree, -L$RPCNET_BUILD_DIR/capi -lrpcnet, with an rpath);
  2. pkg-config rpcnet (an installed copy).

RPCNET_SWIG_DIR overrides where rpcnet.i is looked for (default: ../../swig).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _source_dir_of(build_dir):
    cache = os.path.join(build_dir, "CMakeCache.txt")
    try:
        with open(cache, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"(?:rpcnet_SOURCE_DIR|CMAKE_HOME_DIRECTORY):\w+=(.*)", line)
                if m:
                    return m.group(1).strip()
    except OSError:
        pass
    return os.path.normpath(os.path.join(HERE, "..", ".."))


def _library_flags():
    """(include_dirs, library_dirs, libraries, runtime_library_dirs, extra_compile, extra_link)."""
    build_dir = os.environ.get("RPCNET_BUILD_DIR")
    if build_dir:
        build_dir = os.path.abspath(build_dir)
        libdir = os.path.join(build_dir, "capi")
        if not any(n.startswith("librpcnet.so") for n in os.listdir(libdir) if os.path.isdir(libdir)):
            sys.exit("rpcnet: no librpcnet.so in %s (build the C library first)" % libdir)
        inc = os.path.join(_source_dir_of(build_dir), "capi", "include")
        return [inc], [libdir], ["rpcnet"], [libdir], [], []
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags", "rpcnet"], text=True)
        libs = subprocess.check_output(["pkg-config", "--libs", "rpcnet"], text=True)
    except (OSError, subprocess.CalledProcessError):
        sys.exit(
            "rpcnet: the C library was not found: install it (make install; "
            "pkg-config rpcnet) or set RPCNET_BUILD_DIR to a CMake build tree"
        )
    inc, libdirs, names, extra_c, extra_l = [], [], [], [], []
    for tok in shlex.split(cflags):
        (inc.append(tok[2:]) if tok.startswith("-I") else extra_c.append(tok))
    for tok in shlex.split(libs):
        if tok.startswith("-L"):
            libdirs.append(tok[2:])
        elif tok.startswith("-l"):
            names.append(tok[2:])
        else:
            extra_l.append(tok)
    return inc, libdirs, names, list(libdirs), extra_c, extra_l


def _swig_dir():
    d = os.environ.get("RPCNET_SWIG_DIR") or os.path.join(HERE, "..", "..", "swig")
    d = os.path.abspath(d)
    if not os.path.exists(os.path.join(d, "rpcnet.i")):
        sys.exit("rpcnet: swig/rpcnet.i not found in %s (set RPCNET_SWIG_DIR)" % d)
    return d


class BuildExt(build_ext):
    """Runs SWIG, then compiles its output."""

    def build_extension(self, ext):
        swig = shutil.which(os.environ.get("SWIG", "swig"))
        if not swig:
            sys.exit("rpcnet: swig not found (apt-get install swig)")
        swig_dir = _swig_dir()
        gen_dir = os.path.join(self.build_temp, "swig")
        os.makedirs(gen_dir, exist_ok=True)
        pkg_dir = os.path.join(self.build_lib, "rpcnet")
        os.makedirs(pkg_dir, exist_ok=True)
        wrap_c = os.path.join(gen_dir, "rpcnet_wrap.c")
        cmd = [swig, "-python", "-I" + swig_dir]
        cmd += ["-I" + d for d in ext.include_dirs]
        cmd += ["-outdir", pkg_dir, "-o", wrap_c, os.path.join(swig_dir, "rpcnet.i")]
        print(" ".join(cmd))
        subprocess.check_call(cmd)
        if self.inplace:
            shutil.copy(os.path.join(pkg_dir, "_rpcnet_c.py"), os.path.join(HERE, "rpcnet"))
        ext.sources = [wrap_c]
        super().build_extension(ext)


inc, libdirs, libs, rpath, extra_c, extra_l = _library_flags()

setup(
    ext_modules=[
        Extension(
            "rpcnet.__rpcnet_c",
            sources=["swig/rpcnet.i"],  # replaced by SWIG's output in BuildExt
            include_dirs=inc,
            library_dirs=libdirs,
            libraries=libs,
            runtime_library_dirs=rpath,
            extra_compile_args=extra_c,
            extra_link_args=extra_l,
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
