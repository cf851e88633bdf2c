"""The cluster example end to end: workers in C, Python, Go and Lua join one
cluster and the C director's calls reach every one of them
(examples/cluster/run.sh, the script behind `make cluster-demo`)."""
import os
import re
import subprocess

from harness import BUILD, ROOT


def test_director_spreads_calls_over_four_languages():
    out = subprocess.run(["bash", os.path.join(ROOT, "examples", "cluster", "run.sh"), BUILD, "120"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
    print(out.stdout)
    assert out.returncode == 0, out.stdout
    langs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^lang (\S+) (\d+)$", out.stdout, re.M)}
    assert set(langs) == {"c", "python", "go", "lua"}, langs
    assert all(n > 0 for n in langs.values()), langs
    assert sum(langs.values()) == 120
    assert re.search(r"^failed 0$", out.stdout, re.M)
    assert re.search(r"^\s*4 left OK$", out.stdout, re.M), out.stdout
