"""eval() and list_executions() against a real server."""

import grpc
import pytest

from python_executor_client import ExecutionPage, ExecutionStatus, PythonExecutorError


def test_eval_returns_the_repr_of_the_last_expression(client):
    r = client.eval("xs = [3, 1, 2]\nprint('sorting')\nsorted(xs)")
    assert r.status is ExecutionStatus.COMPLETED and r.exit_code == 0
    assert r.result == "[1, 2, 3]" and r.stdout == "sorting\n"
    assert (r.error_type, r.error_line, r.error_message) == (None, None, None)
    assert client.eval("x = 1").result is None
    assert client.eval("print('hi')").result is None


def test_eval_reports_the_exception(client):
    r = client.eval("x = 1\n\ndef f():\n    return x / 0\nf()\n")
    assert r.result is None and r.exit_code == 1
    assert (r.error_type, r.error_line, r.error_message) == (
        "ZeroDivisionError", 4, "division by zero")
    assert 'File "/work/main.py", line 4, in f' in r.stderr


def test_eval_with_files_stdin_env_and_version(client):
    r = client.eval(files={"main.py": "import helper, os\nhelper.twice(input()) + os.environ['X']",
                           "helper.py": "def twice(s):\n    return s * 2\n"},
                    stdin="ab\n", env_vars=["X=!"], python_version="3.13")
    assert r.result == "'abab!'", r.stderr
    v = client.eval("import sys\nsys.version_info[:2]", python_version="3.13")
    assert v.result == "(3, 13)"


def test_eval_errors_are_raised(client):
    with pytest.raises(PythonExecutorError) as e:
        client.eval("1", python_version="2.7")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "known: 3.11, 3.13" in e.value.details
    assert e.value.response.status_code == 400
    with pytest.raises(ValueError):
        client.eval()
    with pytest.raises(TypeError):
        client.eval("1", script_args=["x"])


def test_eval_without_the_last_expression_is_a_plain_run(client):
    r = client.eval("print(6 * 7)\n6 * 7", eval_last_expr=False)
    assert r.stdout == "42\n" and r.result is None


def test_list_executions_newest_first_by_page_and_status(client):
    first = client.eval("1").execution_id
    second = client.eval("1/0").execution_id
    page = client.list_executions(page_size=1)
    assert isinstance(page, ExecutionPage) and len(page) == 1
    assert page[0].execution_id == second and page.next_page_token
    rest = client.list_executions(page_size=1, page_token=page.next_page_token)
    assert rest[0].execution_id == first
    everything = client.list_executions()
    ids = [e.execution_id for e in everything]
    assert ids.index(second) < ids.index(first) and everything.next_page_token == ""
    assert all(e.stdout == "" for e in everything)
    completed = client.list_executions(status="completed")
    assert all(e.status is ExecutionStatus.COMPLETED for e in completed)
    assert client.list_executions(status=ExecutionStatus.KILLED) == [] or all(
        e.status is ExecutionStatus.KILLED for e in client.list_executions(status="killed"))
