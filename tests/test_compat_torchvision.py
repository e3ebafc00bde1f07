import subprocess
import sys

import pytest

from xaisec._compat import torchvision as tv_compat
from xaisec.utils.checks import XaisecError


def test_import_works_in_a_fresh_interpreter():
    code = ("from xaisec._compat.torchvision import import_torchvision as f; tv = f(); "
            "m = tv.models.resnet18(weights=None); print(type(m).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ResNet"


def test_shim_is_applied_only_when_the_extension_does_not_load():
    code = ("import xaisec._compat.torchvision as c; loads = c.extension_loads(); c.import_torchvision(); "
            "print(loads, c._SHIM_LIBRARY is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    loads, shimmed = out.stdout.split()
    assert (loads == "True") != (shimmed == "True")  # exactly one of the two paths was taken


def test_missing_torchvision_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(tv_compat.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(XaisecError, match="pip install"):
        tv_compat.import_torchvision()
