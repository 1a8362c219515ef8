"""Optional packages of the applications: a missing one is one line naming what to install; the runtime
imports none of them."""

from __future__ import annotations

import importlib

import pytest
from conftest import run_without_torch

from calibnet.runtime.apps import optional
from calibnet.runtime.apps.optional import MissingDependency, require


def test_import_calibnet_runtime_imports_no_robotics_package():
    res = run_without_torch("import calibnet.runtime\n"
                            "from calibnet.runtime import BagSource, RealSenseSource\n"
                            "print(sorted(m for m in ('rosbags', 'pyrealsense2', 'rerun') if m in sys.modules))\n")
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr


def test_a_missing_package_or_system_library_is_one_line_with_the_install_hint(monkeypatch):
    def fail(name):
        raise ImportError("libusb-1.0.so.0: cannot open shared object file" if name == "pyrealsense2"
                          else f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", fail)
    with pytest.raises(MissingDependency) as e:
        require("rosbags.highlevel", "reading ROS bags")
    assert str(e.value) == ("reading ROS bags needs rosbags: pip install 'rosbags', "
                            "or pip install \".[robotics]\" (in the calibnet checkout)")
    with pytest.raises(MissingDependency, match=r"needs rerun-sdk: pip install 'rerun-sdk', or pip install \"\.\[rob"):
        require("rerun", "logging to Rerun")
    with pytest.raises(MissingDependency, match="apt-get install libusb-1.0-0"):
        require("pyrealsense2", "reading a RealSense camera")
    assert optional.PACKAGES.keys() == {"rosbags", "pyrealsense2", "rerun"}


def test_bag_source_without_rosbags_says_how_to_install_it(tmp_path):
    res = run_without_torch(
        "class _NoRosbags:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'rosbags' or name.startswith('rosbags.'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, _NoRosbags())\n"
        "from calibnet.runtime import BagSource\n"
        "try:\n"
        f"    BagSource({str(tmp_path / 'x.mcap')!r})\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n")
    assert res.stdout.strip() == ("MissingDependency reading ROS bags needs rosbags: pip install 'rosbags'"
                                  ", or pip install \".[robotics]\" (in the calibnet checkout)"), res.stderr
