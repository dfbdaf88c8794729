"""Server reflection (grpc.reflection.v1 and v1alpha ServerReflectionInfo)
over the fake back-end: what a tool such as grpcurl needs to discover the
services and call them without the .proto files. Each test names the
behaviour it asserts.

The reflection stubs are generated here, from proto/grpc/reflection, into a
temporary directory. Their path is moved to a package name of our own (as
tests/support/pyexecd.py does for health): the generated module would
otherwise be `grpc.reflection.v1`, inside grpcio's own `grpc` package. The
proto packages (the wire names) are unchanged.
"""

import importlib
import pathlib
import queue
import shutil
import subprocess
import sys
import types

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

REPO = pathlib.Path(__file__).resolve().parents[3]

SERVICES = {
    "pyexec.v1.ExecutorService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}
EXECUTOR_FILES = {
    "pyexec/v1/executor.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/wrappers.proto",
}
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]  # 5
REQUEST_MAX = 64 * 1024  # REFLECTION_REQUEST_MAX in server/rpc/reflection.c


@pytest.fixture(scope="session")
def refl(tmp_path_factory):
    """Namespace with .v1 / .v1alpha, each with .pb (messages) and .grpc."""
    out = tmp_path_factory.mktemp("reflection-stubs")
    src, gen = out / "src", out / "gen"
    gen.mkdir()
    for version in ("v1", "v1alpha"):
        d = src / "pyexec_test_reflection" / version
        d.mkdir(parents=True)
        shutil.copy(REPO / "proto" / "grpc" / "reflection" / version / "reflection.proto", d)
    cmd = ["protoc", "-I", str(src), f"--python_out={gen}", f"--grpc_python_out={gen}",
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
           "pyexec_test_reflection/v1/reflection.proto",
           "pyexec_test_reflection/v1alpha/reflection.proto"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    sys.path.insert(0, str(gen))
    ns = types.SimpleNamespace()
    for version in ("v1", "v1alpha"):
        base = f"pyexec_test_reflection.{version}.reflection_pb2"
        setattr(ns, version, types.SimpleNamespace(
            pb=importlib.import_module(base),
            grpc=importlib.import_module(base + "_grpc")))
    return ns


def ask(fake, api, *requests, timeout=30):
    """Sends `requests` on one stream, half-closes, returns every response."""
    stub = api.grpc.ServerReflectionStub(fake.channel)
    return list(stub.ServerReflectionInfo(iter(requests), timeout=timeout))


def files_of(resp):
    """The FileDescriptorProtos of a file_descriptor_response, in order."""
    assert resp.WhichOneof("message_response") == "file_descriptor_response", resp
    out = []
    for raw in resp.file_descriptor_response.file_descriptor_proto:
        fdp = descriptor_pb2.FileDescriptorProto()
        fdp.ParseFromString(raw)
        out.append(fdp)
    return out


def pool_of(fdps):
    """A fresh DescriptorPool holding `fdps`, added dependencies first."""
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in fdps}
    added = set()
    while pending:
        ready = [f for f in pending.values() if set(f.dependency) <= added]
        assert ready, f"unresolvable dependencies among {sorted(pending)}"
        for f in ready:
            pool.Add(f)
            added.add(f.name)
            del pending[f.name]
    return pool


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_list_services_names_the_four_services(fake, refl, version):
    api = getattr(refl, version)
    [resp] = ask(fake, api, api.pb.ServerReflectionRequest(list_services=""))
    assert resp.WhichOneof("message_response") == "list_services_response"
    names = [s.name for s in resp.list_services_response.service]
    assert len(names) == len(set(names))
    assert set(names) == SERVICES


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_file_containing_service_describes_it_completely(fake, refl, version):
    api = getattr(refl, version)
    [resp] = ask(fake, api, api.pb.ServerReflectionRequest(
        file_containing_symbol="pyexec.v1.ExecutorService"))
    fdps = files_of(resp)
    names = [f.name for f in fdps]
    assert names[0] == "pyexec/v1/executor.proto"  # the requested file first
    assert len(names) == len(set(names))            # each file once
    assert set(names) == EXECUTOR_FILES             # with its imports
    service = pool_of(fdps).FindServiceByName("pyexec.v1.ExecutorService")
    methods = {m.name: m for m in service.methods}
    assert set(methods) == {"Execute", "GetExecution", "StreamOutput", "Kill", "Eval",
                            "ListExecutions"}
    assert methods["Execute"].input_type.full_name == "pyexec.v1.ExecuteRequest"
    assert methods["Execute"].output_type.full_name == "pyexec.v1.ExecutionResult"
    assert methods["StreamOutput"].output_type.full_name == "pyexec.v1.OutputChunk"
    assert methods["ListExecutions"].output_type.full_name == "pyexec.v1.ListExecutionsResponse"


def test_a_client_can_call_the_service_from_reflected_descriptors_alone(fake, refl):
    api = refl.v1
    [resp] = ask(fake, api, api.pb.ServerReflectionRequest(
        file_containing_symbol="pyexec.v1.ExecutorService.Execute"))
    pool = pool_of(files_of(resp))
    method = pool.FindMethodByName("pyexec.v1.ExecutorService.Execute")
    factory = message_factory.MessageFactory(pool)
    request_cls = factory.GetPrototype(method.input_type)
    result_cls = factory.GetPrototype(method.output_type)
    request = request_cls()
    request.metadata.script_args.extend(["print:hi from reflection\n", "exit:0"])
    request.files.add(path="main.py", content=b"")
    call = fake.channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=result_cls.FromString)
    result = call(request, timeout=30)
    assert result.stdout == b"hi from reflection\n"
    assert result.exit_code == 0
    status = pool.FindEnumTypeByName("pyexec.v1.ExecutionStatus")
    assert status.values_by_number[result.status].name == "EXECUTION_STATUS_COMPLETED"


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_file_by_filename_returns_the_file_and_its_imports(fake, refl, version):
    api = getattr(refl, version)
    executor, health = ask(
        fake, api,
        api.pb.ServerReflectionRequest(file_by_filename="pyexec/v1/executor.proto"),
        api.pb.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"))
    fdps = files_of(executor)
    assert fdps[0].name == "pyexec/v1/executor.proto"
    assert fdps[0].package == "pyexec.v1"
    assert sorted(f.name for f in fdps) == sorted(EXECUTOR_FILES)
    assert [f.name for f in files_of(health)] == ["grpc/health/v1/health.proto"]


@pytest.mark.parametrize("symbol,file", [
    ("pyexec.v1.ExecuteRequest", "pyexec/v1/executor.proto"),
    ("pyexec.v1.TerminationReason", "pyexec/v1/executor.proto"),
    (".pyexec.v1.OutputChunk", "pyexec/v1/executor.proto"),
    ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
    ("grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"),
    ("grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"),
    ("google.protobuf.Timestamp", "google/protobuf/timestamp.proto"),
])
def test_file_containing_symbol_finds_messages_enums_nested_types_and_methods(
        fake, refl, symbol, file):
    api = refl.v1
    [resp] = ask(fake, api, api.pb.ServerReflectionRequest(file_containing_symbol=symbol))
    assert files_of(resp)[0].name == file


def test_unknown_symbol_or_file_is_not_found_and_the_stream_goes_on(fake, refl):
    api = refl.v1
    req = api.pb.ServerReflectionRequest
    responses = ask(fake, api,
                    req(file_containing_symbol="pyexec.v1.NoSuchThing"),
                    req(file_by_filename="no/such.proto"),
                    req(file_containing_symbol="pyexec.v1.ExecutorService.NoSuchMethod"),
                    req(list_services=""))
    assert len(responses) == 4
    for resp in responses[:3]:
        assert resp.WhichOneof("message_response") == "error_response"
        assert resp.error_response.error_code == NOT_FOUND
    assert "NoSuchThing" in responses[0].error_response.error_message
    assert "no/such.proto" in responses[1].error_response.error_message
    assert {s.name for s in responses[3].list_services_response.service} == SERVICES


def test_error_messages_quote_long_and_non_ascii_names_safely(fake, refl):
    api = refl.v1
    name = "pyexec.v1." + "\u00e9" * 400  # 800 bytes of UTF-8
    [resp] = ask(fake, api, api.pb.ServerReflectionRequest(file_containing_symbol=name))
    msg = resp.error_response.error_message  # parsed, so valid UTF-8
    assert resp.error_response.error_code == NOT_FOUND
    # The server's one quoting (server/base/quote.h): non-ASCII bytes as
    # \xNN, at most 96 bytes of the name, then "...".
    assert "'pyexec.v1.\\xc3\\xa9\\xc3\\xa9" in msg and msg.endswith("...'")
    assert len(msg) <= len("unknown symbol ''") + 4 * 96 + len("...")
    assert resp.original_request.file_containing_symbol == name


def test_extensions_are_not_found_and_known_types_have_none(fake, refl):
    api = refl.v1
    req = api.pb.ServerReflectionRequest
    by_ext, known, unknown = ask(
        fake, api,
        req(file_containing_extension=api.pb.ExtensionRequest(
            containing_type="pyexec.v1.ExecuteRequest", extension_number=100)),
        req(all_extension_numbers_of_type="pyexec.v1.ExecuteRequest"),
        req(all_extension_numbers_of_type="pyexec.v1.NoSuchType"))
    assert by_ext.WhichOneof("message_response") == "error_response"
    assert by_ext.error_response.error_code == NOT_FOUND
    assert known.WhichOneof("message_response") == "all_extension_numbers_response"
    assert known.all_extension_numbers_response.base_type_name == "pyexec.v1.ExecuteRequest"
    assert list(known.all_extension_numbers_response.extension_number) == []
    assert unknown.error_response.error_code == NOT_FOUND


def test_several_requests_on_one_stream_are_answered_in_order_with_echoes(fake, refl):
    api = refl.v1
    req = api.pb.ServerReflectionRequest
    requests = [
        req(host="a.example", list_services="*"),
        req(host="b.example", file_containing_symbol="grpc.health.v1.Health"),
        req(host="c.example", file_containing_symbol="nope"),
        req(host="d.example", file_by_filename="pyexec/v1/executor.proto"),
        req(host="e.example", all_extension_numbers_of_type="grpc.health.v1.HealthCheckRequest"),
    ]
    responses = ask(fake, api, *requests)
    assert len(responses) == len(requests)
    for sent, got in zip(requests, responses):
        assert got.valid_host == sent.host
        assert got.original_request == sent
    assert [r.WhichOneof("message_response") for r in responses] == [
        "list_services_response", "file_descriptor_response", "error_response",
        "file_descriptor_response", "all_extension_numbers_response"]


def test_each_request_is_answered_before_the_client_half_closes(fake, refl):
    api = refl.v1
    outbox = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    stub = api.grpc.ServerReflectionStub(fake.channel)
    responses = stub.ServerReflectionInfo(requests(), timeout=30)
    for symbol in ("pyexec.v1.ExecutorService", "grpc.health.v1.Health", "nope"):
        outbox.put(api.pb.ServerReflectionRequest(file_containing_symbol=symbol))
        got = next(responses)  # the stream is still open on the client side
        assert got.original_request.file_containing_symbol == symbol
    outbox.put(None)
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


def test_an_empty_stream_ends_with_ok(fake, refl):
    stub = refl.v1.grpc.ServerReflectionStub(fake.channel)
    call = stub.ServerReflectionInfo(iter(()), timeout=30)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


def test_request_without_a_known_field_is_an_invalid_argument_response(fake, refl):
    api = refl.v1
    [resp] = ask(fake, api, api.pb.ServerReflectionRequest(host="h"))
    assert resp.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert resp.valid_host == "h"


def test_a_request_above_the_limit_ends_the_call(fake, refl):
    api = refl.v1
    big = api.pb.ServerReflectionRequest(host="h" * (REQUEST_MAX + 1), list_services="")
    with pytest.raises(grpc.RpcError) as e:
        ask(fake, api, api.pb.ServerReflectionRequest(list_services=""), big)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A request just inside the limit is answered.
    ok = api.pb.ServerReflectionRequest(host="h" * (REQUEST_MAX - 64), list_services="")
    assert ok.ByteSize() <= REQUEST_MAX
    [resp] = ask(fake, api, ok)
    assert resp.WhichOneof("message_response") == "list_services_response"


def test_bytes_that_are_not_a_request_end_the_call_with_invalid_argument(fake):
    call = fake.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        list(call(iter([b"\xff\xff\xff"]), timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_cancelled_stream_is_released(fake, refl):
    api = refl.v1
    outbox = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    stub = api.grpc.ServerReflectionStub(fake.channel)
    responses = stub.ServerReflectionInfo(requests(), timeout=30)
    outbox.put(api.pb.ServerReflectionRequest(list_services=""))
    next(responses)
    responses.cancel()
    outbox.put(None)
    assert responses.code() == grpc.StatusCode.CANCELLED
    # The server still answers on a new stream (and the fixture checks that
    # it exits cleanly, with no call left behind).
    [resp] = ask(fake, api, api.pb.ServerReflectionRequest(list_services=""))
    assert {s.name for s in resp.list_services_response.service} == SERVICES


def test_an_open_stream_does_not_hold_up_shutdown(fake_factory, refl):
    fake = fake_factory()
    api = refl.v1
    outbox = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    stub = api.grpc.ServerReflectionStub(fake.channel)
    responses = stub.ServerReflectionInfo(requests(), timeout=60)
    outbox.put(api.pb.ServerReflectionRequest(list_services=""))
    next(responses)
    # The client neither sends nor half-closes; the server must still stop.
    assert fake.server.stop() == 0
    with pytest.raises(grpc.RpcError) as e:
        next(responses)
    assert e.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    outbox.put(None)
