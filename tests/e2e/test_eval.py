"""Eval end to end, in real containers: REPL-style results, structured
errors, and a wrapper the program cannot see."""

import textwrap

import pytest

import pyexecd


def ev(stub, pb, code=None, files=None, timeout=120, **kw):
    """Runs an Eval synchronously. `files` is a {path: content} dict."""
    req = pb.EvalRequest(**kw)
    if code is not None:
        req.code = textwrap.dedent(code)
    if files is not None:
        req.files.extend(pyexecd.make_files(files))
    return stub.Eval(req, timeout=timeout)


# The Python versions the server offers by default (scripts/setup builds both).
VERSIONS = ["3.11", "3.13"]


@pytest.fixture(params=VERSIONS)
def py(request):
    """Runs the test once per Python version."""
    return request.param


def result_of(res):
    return res.result.value if res.HasField("result") else None


# ---- the value of the last expression ----

@pytest.mark.parametrize("code,want", [
    ("1 + 1", "2"),
    ("for i in range(3):\n    pass\ni * 10\n", "20"),              # after a for loop
    ("x = [1,\n     2,\n     3]\n(sum(x) +\n 100)\n", "106"),       # multi-line expression
    ("1 + 1  # two\n", "2"),                                         # trailing comment
    ("2 * 3;\n", "6"),                                               # trailing semicolon
    ("'a' + 'b'\n# the end\n", "'ab'"),
    ("{'k': [1, 2]}", "{'k': [1, 2]}"),
    ("'''doc'''", "'doc'"),
])
def test_result_is_the_repr_of_the_last_expression(stub, pb, py, code, want):
    res = ev(stub, pb, code, python_version=py)
    assert res.status == pb.EXECUTION_STATUS_COMPLETED and res.exit_code == 0, res.stderr
    assert result_of(res) == want
    assert res.error_type == "" and res.error_line == 0


@pytest.mark.parametrize("code", [
    "x = 1\n",                              # ends with an assignment
    "x = 1\nx += 1\n",
    "print('hi')\n",                        # None is not reported, as in the REPL
    "None\n",
    "if True:\n    5\n",                    # an expression nested in an if
    "def f():\n    return 1\n",
])
def test_no_result_unless_the_code_ends_with_a_non_none_expression(stub, pb, py, code):
    res = ev(stub, pb, code, python_version=py)
    assert res.exit_code == 0, res.stderr
    assert not res.HasField("result")


def test_an_expression_with_side_effects_is_evaluated_exactly_once(stub, pb, py):
    res = ev(stub, pb, python_version=py, code="""\
        calls = []
        def f():
            calls.append(1)
            print("called", len(calls))
            return len(calls)
        f()
        """)
    assert res.stdout == b"called 1\n"
    assert result_of(res) == "1"


def test_main_block_runs_and_output_comes_before_the_result(stub, pb, py):
    res = ev(stub, pb, python_version=py, code="""\
        if __name__ == "__main__":
            print("main ran")
        answer = 42
        answer
        """)
    assert res.stdout == b"main ran\n"
    assert result_of(res) == "42"


def test_stdin_and_env_reach_the_program(stub, pb):
    res = ev(stub, pb, "import os, sys\n(sys.stdin.read(), os.environ['GREETING'])\n",
             stdin=b"from stdin", env_vars=["GREETING=hi"])
    assert result_of(res) == "('from stdin', 'hi')"


def test_async_eval_result_is_read_with_get_execution(stub, pb):
    req = pb.EvalRequest(code="6 * 7")
    setattr(req, "async", True)
    first = stub.Eval(req, timeout=30)
    res = pyexecd.wait_terminal(stub, first.execution_id, timeout=120)
    assert result_of(res) == "42"


def test_a_repr_that_raises_is_reported_as_text(stub, pb):
    res = ev(stub, pb, """\
        class Odd:
            def __repr__(self):
                raise RuntimeError("no repr")
        Odd()
        """)
    assert res.exit_code == 0 and res.error_type == ""
    assert result_of(res) == "<repr() raised RuntimeError: no repr>"


def test_a_huge_repr_is_cut_and_the_cut_flagged(stub, pb):
    res = ev(stub, pb, "'x' * 100000")
    text = result_of(res)
    assert text.startswith("'xxxx")
    assert text.endswith("... [result cut at 16384 of 100002 characters]")
    assert len(text) < 16384 + 100


# ---- structured errors ----

def test_traceback_and_error_line_refer_to_the_users_file(stub, pb):
    res = ev(stub, pb, """\
        def f(n):
            return 10 / n

        f(0)
        """)
    assert res.exit_code == 1 and not res.HasField("result")
    assert (res.error_type, res.error_line, res.error_message) == (
        "ZeroDivisionError", 2, "division by zero")
    err = res.stderr.decode()
    assert err.startswith("Traceback (most recent call last):\n")
    assert 'File "/work/main.py", line 4, in <module>\n    f(0)\n' in err
    assert 'File "/work/main.py", line 2, in f\n    return 10 / n\n' in err
    assert "<string>" not in err and "wrapper" not in err and "pyexec" not in err


def test_the_traceback_is_the_one_execute_prints(stub, pb, ex, py):
    code = "x = 1\ndef g():\n    return undefined_name\n\ng()\n"
    evald = ev(stub, pb, code, python_version=py)
    executed = ex.run(code, python_version=py)
    assert evald.stderr == executed.stderr
    assert evald.exit_code == executed.exit_code == 1
    assert (evald.error_type, evald.error_line) == ("NameError", 3)
    assert evald.error_message == "name 'undefined_name' is not defined"


@pytest.mark.parametrize("code,etype,line", [
    ("x = 1\ny = (\n", "SyntaxError", 2),
    ("x = 1\nif x:\n    a = 1\n  b = 2\n", "IndentationError", 4),
    ("x = 1\n\n\nreturn 5\n", "SyntaxError", 4),
])
def test_syntax_errors_report_the_users_line(stub, pb, ex, py, code, etype, line):
    res = ev(stub, pb, code, python_version=py)
    assert (res.error_type, res.error_line) == (etype, line)
    assert res.error_message and "main.py" not in res.error_message
    assert f'File "/work/main.py", line {line}\n'.encode() in res.stderr
    assert res.stderr == ex.run(code, python_version=py).stderr


def test_exception_in_an_imported_module_reports_the_entrypoint_line(stub, pb, py):
    res = ev(stub, pb, python_version=py, files={
        "main.py": "import helper\nx = 1\nhelper.boom()\n",
        "helper.py": "def boom():\n    x = 1\n    raise KeyError('k')\n",
    }, entrypoint="main.py")
    assert (res.error_type, res.error_line, res.error_message) == ("KeyError", 3, "'k'")
    assert b'File "/work/helper.py", line 3, in boom' in res.stderr


def test_exception_of_a_user_defined_class(stub, pb):
    res = ev(stub, pb, "class AppError(Exception):\n    pass\nraise AppError('bad')\n")
    assert (res.error_type, res.error_line, res.error_message) == ("AppError", 3, "bad")


@pytest.mark.parametrize("code,exit_code,error", [
    ("import sys\nsys.exit(3)\n", 3, ("SystemExit", 2, "3")),
    ("import sys\nsys.exit('bye')\n", 1, ("SystemExit", 2, "bye")),
    ("import sys\nprint('out')\nsys.exit(0)\n", 0, ("", 0, "")),
    ("raise KeyboardInterrupt\n", 130, ("KeyboardInterrupt", 1, "")),
])
def test_exits_and_interrupts(stub, pb, py, code, exit_code, error):
    res = ev(stub, pb, code, python_version=py)
    assert res.exit_code == exit_code
    assert (res.error_type, res.error_line, res.error_message) == error
    assert not res.HasField("result")


# ---- the wrapper is invisible ----

INTROSPECT = """\
import sys, os, __main__
import traceback
print(__name__, __file__, sys.argv, sys.path[0], os.getcwd())
print(sys.modules["__main__"] is __main__, __main__.__dict__ is globals())
print(sorted(k for k in vars(__main__) if k.startswith("__")))
print(type(__loader__).__name__, __loader__.name, __spec__, __package__, __doc__)
print(sys.orig_argv[1:])
print(traceback.format_stack()[-1].splitlines()[0])
print(open(__file__).read() == open("main.py").read())
print(os.open("/dev/null", os.O_RDONLY))
"""


def test_the_program_sees_what_execute_shows_it(stub, pb, ex, py):
    evald = ev(stub, pb, INTROSPECT, python_version=py)
    executed = ex.run(INTROSPECT, python_version=py)
    assert evald.stderr == b"" and evald.exit_code == 0
    assert evald.stdout == executed.stdout
    assert b"__main__ /work/main.py ['main.py'] /work /work\nTrue True\n" in evald.stdout


def test_output_imitating_the_result_channel_is_just_output(stub, pb, py):
    fake = '"\\x1ePYX" + "0" * 32 + "\\x1e"'
    code = (f'm = {fake}\n'
            'print(m + \'{"result": "forged"}\' + m)\n'
            'import sys\n'
            'sys.stderr.write(m + \'{"error_type": "Forged", "exit_code": 0}\' + m + "\\n")\n'
            'x = 1\n')
    res = ev(stub, pb, code, python_version=py)
    assert not res.HasField("result") and res.error_type == ""
    assert res.stdout.count(b'{"result": "forged"}') == 1
    assert b'"Forged"' in res.stderr


def test_execute_never_sets_the_eval_fields(ex, pb):
    res = ex.run("1 + 1\nraise ValueError('x')\n")
    assert not res.HasField("result")
    assert (res.error_type, res.error_line, res.error_message) == ("", 0, "")


def test_each_version_runs_its_own_python(stub, pb):
    for version in VERSIONS:
        res = ev(stub, pb, "import sys\n'%d.%d' % sys.version_info[:2]", python_version=version)
        assert result_of(res) == repr(version)


def test_requirements_are_installed_before_the_code_runs(flags, instance, pb, tmp_path):
    """The dependency layer (built from the server's wheelhouse) is on the
    path of an Eval's code too; its build's output is stderr, not stdout."""
    import uuid

    import wheels
    from conftest import server_args
    wheels.make_wheel(tmp_path, "demo", modules={"demo.py": "X = 42\n"})
    inst = f"{instance}-eval-deps-{uuid.uuid4().hex[:6]}"
    try:
        with pyexecd.Server(*server_args(flags, inst), "--wheelhouse", str(tmp_path)) as srv:
            stub = pyexecd.stubs().executor_grpc.ExecutorServiceStub(srv.channel())
            res = ev(stub, pb, files={"main.py": "import demo\ndemo.X * 2\n"},
                     requirements_txt="demo\n")
            assert result_of(res) == "84", res.stderr
            assert res.stdout == b""
    finally:
        pyexecd.docker_api("DELETE", f"/volumes/pyexec-deps-{inst}")


def test_an_excepthook_the_program_sets_prints_the_traceback(stub, pb, ex):
    code = ("import sys\n"
            "def hook(t, v, tb):\n"
            "    print('hooked', t.__name__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)\n"
            "sys.excepthook = hook\n"
            "raise ValueError('x')\n")
    evald = ev(stub, pb, code)
    assert evald.stdout == ex.run(code).stdout == b"hooked ValueError /work/main.py 5\n"
    assert (evald.error_type, evald.error_line) == ("ValueError", 5)


def test_a_forked_child_does_not_replace_the_report(stub, pb):
    # The parent reports, then (at exit) lets the child go on and waits for
    # it; the child reaches the end of the module while the parent still runs.
    res = ev(stub, pb, "import atexit, os\n"
                       "r, w = os.pipe()\n"
                       "pid = os.fork()\n"
                       "def release():\n"
                       "    os.write(w, b'go')\n"
                       "    os.waitpid(pid, 0)\n"
                       "if pid:\n"
                       "    atexit.register(release)\n"
                       "else:\n"
                       "    os.read(r, 2)\n"
                       "'child' if pid == 0 else 'parent'\n")
    assert result_of(res) == "'parent'"
