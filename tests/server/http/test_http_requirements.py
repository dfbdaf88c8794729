"""requirements_txt through the HTTP door: the same check as gRPC's
(server/model/requirements.c through the RPC codec), so a line that is not a
named requirement is a 400 naming the line, for uploads and eval alike."""

import json

import pytest


@pytest.mark.parametrize("line,needle", [
    ("-i http://127.0.0.1:9/simple", "options are not allowed"),
    ("git+https://h/repo.git", "URLs are not allowed"),
    ("./pkg", "paths are not allowed"),
])
def test_refused_requirement_lines_are_400_naming_the_line(door, line, needle):
    r = door.run("exit:0", requirements_txt="requests\n" + line + "\n")
    assert r.status == 400, r.body
    error = r.json()["error"]
    assert "requirements_txt: line 2 (" in error and needle in error, error


def test_eval_refuses_them_alike(door):
    r = door.request("POST", "/api/v1/eval",
                     json.dumps({"code": "1", "requirements_txt": "-r other.txt\n"}),
                     {"Content-Type": "application/json"})
    assert r.status == 400, r.body
    assert "line 1 (" in r.json()["error"] and "options" in r.json()["error"]


def test_named_requirements_pass_the_check(door):
    r = door.run("exit:0", requirements_txt="requests[socks]>=2 ; python_version >= '3.8'\n")
    assert r.status == 200, r.body
