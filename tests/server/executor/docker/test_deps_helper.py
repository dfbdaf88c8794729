"""The dependency helper's import detection (server/executor/docker/
deps_helper.py, mode `detect`), run here as the server runs it in the image:
`python3 -I -S -c <helper> detect` with the project's tar on stdin. This
machine's python3 is Debian 12's 3.11, as is the image's."""

import io
import json
import pathlib
import subprocess
import tarfile

HELPER = (pathlib.Path(__file__).resolve().parents[4] / "server" / "executor" / "docker" /
          "deps_helper.py").read_text()


def detect(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    p = subprocess.run(["python3", "-I", "-S", "-c", HELPER, "detect"], input=buf.getvalue(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_stdlib_and_own_modules_are_not_requirements():
    got = detect({
        "main.py": "import os, json, sys, collections.abc, __future__\n"
                   "import helper\nfrom pkg.sub import thing\nfrom . import sibling\n"
                   "from .rel import x\nimport requests.adapters\n",
        "helper.py": "import numpy as np\n",
        "pkg/__init__.py": "",
        "pkg/sub.py": "thing = 1\n",
    })
    assert got == {"requirements": ["numpy", "requests"], "modules": ["numpy", "requests"]}


def test_import_names_map_to_their_distributions():
    got = detect({"main.py": "import yaml\nfrom PIL import Image\nimport sklearn.linear_model\n"
                             "import cv2\nfrom bs4 import BeautifulSoup\nimport dateutil.parser\n"
                             "import google.protobuf\n"})
    assert got["requirements"] == ["PyYAML", "beautifulsoup4", "opencv-python", "pillow",
                                   "python-dateutil", "scikit-learn"]
    assert "google" in got["modules"], "a namespace shared by many distributions is not guessed"


def test_imports_anywhere_count_but_optional_ones_and_broken_files_do_not():
    got = detect({
        "main.py": "def f():\n    import attr\n"
                   "try:\n    import ujson as json\nexcept ImportError:\n    import json\n"
                   "try:\n    import orjson\nexcept (ValueError, ModuleNotFoundError):\n    pass\n"
                   "try:\n    import needed\nexcept KeyError:\n    pass\n"
                   "class C:\n    import toml\n",
        "broken.py": "def (:\n",
        "data/readme.txt": "import notpython\n",
    })
    assert got["requirements"] == ["attrs", "needed", "toml"]


def test_modules_anywhere_in_the_project_are_its_own():
    got = detect({"src/app/__init__.py": "", "src/app/core.py": "import app.util\n",
                  "scripts/run.py": "import app, tools, requests\n", "lib/tools.py": ""})
    assert got["requirements"] == ["requests"]


def test_a_project_without_imports_needs_nothing():
    assert detect({"main.py": "print('hi')\n"}) == {"requirements": [], "modules": []}
