"""Code written against the original python_executor_client's documented API
(its README, docstrings and types), run unchanged against pyexec. Only the
server address is this test's."""

import time

import pytest

from python_executor_client import (
    ExecutionConfig,
    ExecutionResult,
    ExecutionStatus,
    Metadata,
    PythonExecutorClient,
)


@pytest.fixture
def base_url(server):
    return f"http://{server.address}/"


def test_the_original_documented_calls(base_url):
    client = PythonExecutorClient(base_url)
    client = PythonExecutorClient(base_url, 60)  # timeout, positional

    result = client.execute_sync(
        files={"main.py": "print('Hello, World!')"},
        entrypoint="main.py"
    )
    assert result.stdout == "Hello, World!\n"
    assert result.exit_code == 0
    assert result.status == ExecutionStatus.COMPLETED
    assert str(result.status.value) == "completed"

    result = client.execute_sync(
        files={
            "main.py": "from helper import greet; greet()",
            "helper.py": "def greet(): print('Hello from helper!')"
        },
        entrypoint="main.py"
    )
    assert result.stdout == "Hello from helper!\n"

    config = ExecutionConfig(
        timeout_seconds=60,
        network_disabled=True,
        memory_mb=512
    )
    metadata = Metadata(entrypoint="main.py", config=config)
    result = client.execute_sync(files={"main.py": "print('configured')"}, metadata=metadata)
    assert result.stdout == "configured\n"

    exec_id = client.execute_async(
        files={"main.py": "import time; time.sleep(1); print('done')"}
    )
    assert exec_id.startswith("exe_")
    result = client.wait_for_completion(exec_id, 0.5)  # poll_interval, positional
    assert result.stdout == "done\n"
    result = client.wait_for_completion(exec_id, poll_interval=1.0)
    assert result.status in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED,
                             ExecutionStatus.KILLED)

    exec_id = client.execute_async(files={"main.py": "import time; time.sleep(3600)"})
    try:
        result = client.wait_for_completion(exec_id, max_wait=1.0)
    except TimeoutError:
        client.kill(exec_id)
    assert client.get_execution(exec_id).status == ExecutionStatus.KILLED

    result = client.get_execution(client.execute_async(files={"main.py": "print(1)"}))
    if result.status == ExecutionStatus.COMPLETED:
        print(result.stdout)


def test_the_original_eval_examples(base_url):
    client = PythonExecutorClient(base_url)
    result = client.eval("2 + 2")
    assert result.result == "4"
    result = client.eval("x = 5\ny = 10\nx + y")
    assert result.result == "15"
    result = client.eval("import math\nmath.sqrt(16)")
    assert result.result == "4.0"
    result = client.eval("print('hello')")
    assert result.stdout == "hello\n"
    assert result.result is None

    result = client.eval(
        "",
        files=[{"name": "main.py", "content": "import util\nutil.VALUE * 2"},
               {"name": "util.py", "content": "VALUE = 21"}],
        entrypoint="main.py",
        stdin="ignored",
        python_version="3.13",
        timeout_seconds=30,
    )
    assert result.result == "42"
    result = client.eval("1 + 1", eval_last_expr=False)
    assert result.result is None and result.exit_code == 0


def test_what_the_original_callers_catch(base_url):
    client = PythonExecutorClient(base_url)
    try:
        client.get_execution("exe_00000000-0000-4000-8000-000000000000")
    except IOError as e:  # requests.HTTPError is an IOError
        assert e.response.status_code == 404
    else:
        pytest.fail("no error for an unknown execution")
    with pytest.raises(ValueError):
        client.execute_sync()


def test_results_round_trip_through_the_original_dict_shape(base_url):
    client = PythonExecutorClient(base_url)
    result = client.eval("1 / 0")
    data = result.to_dict()
    again = ExecutionResult.from_dict(data)
    assert (again.error_type, again.error_line, again.result) == ("ZeroDivisionError", 1, None)
    assert again.status == ExecutionStatus.COMPLETED
    assert isinstance(again.finished_at.year, int) and again.finished_at.year >= time.gmtime().tm_year - 1
