"""requirements_txt is checked before anything runs, the same way for every
RPC that carries it: a line that is not a named requirement (an option, a
URL, a path, a VCS reference) is INVALID_ARGUMENT naming the line, and the
number of lines is bounded (--max-requirements)."""

import grpc
import pytest

REFUSED = [
    ("-i http://127.0.0.1:9/simple", "options are not allowed"),
    ("--index-url=http://127.0.0.1:9/simple", "options are not allowed"),
    ("--extra-index-url http://127.0.0.1:9/simple", "options are not allowed"),
    ("-e .", "options are not allowed"),
    ("-r other.txt", "options are not allowed"),
    ("-f /wheels", "options are not allowed"),
    ("--trusted-host example", "options are not allowed"),
    ("https://h/pkg-1.0-py3-none-any.whl", "URLs are not allowed"),
    ("pkg @ https://h/pkg.whl", "URLs are not allowed"),
    ("git+https://h/repo.git#egg=pkg", "URLs are not allowed"),
    ("./pkg", "paths are not allowed"),
    ("/wheels/pkg-1.0-py3-none-any.whl", "paths are not allowed"),
    ("pkg-1.0-py3-none-any.whl", "paths are not allowed"),
    ("pkg==${V}", "environment variables"),
]


@pytest.mark.parametrize("line,needle", REFUSED)
def test_refused_lines_are_invalid_argument_naming_the_line(fake, line, needle):
    req = fake.request("exit:0")
    req.metadata.requirements_txt = "requests>=2\n# a comment\n" + line + "\n"
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Execute(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("metadata.requirements_txt: line 3 ('"), e.value.details()
    assert needle in e.value.details()


def test_eval_checks_its_requirements_alike(fake):
    req = fake.pb.EvalRequest(code="1", requirements_txt="-i http://127.0.0.1:9/simple\n")
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Eval(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("requirements_txt: line 1 ("), e.value.details()


def test_the_number_of_requirements_is_bounded(fake_factory):
    fake = fake_factory("--max-requirements", "2")
    req = fake.request("exit:0")
    req.metadata.requirements_txt = "a\nb\nc\n"
    with pytest.raises(grpc.RpcError) as e:
        fake.stub.Execute(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 3: more than 2 requirements" in e.value.details()
