#include "server/rpc/status.h"

#include "google/rpc/code.pb-c.h"

grpc_status_code px_status_from_code(px_code code) {
    switch (code) {
    case PX_OK: return GRPC_STATUS_OK;
    case PX_E_INVALID: return GRPC_STATUS_INVALID_ARGUMENT;
    case PX_E_NOT_FOUND: return GRPC_STATUS_NOT_FOUND;
    case PX_E_EXHAUSTED: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case PX_E_UNAVAILABLE: return GRPC_STATUS_UNAVAILABLE;
    case PX_E_PRECONDITION: return GRPC_STATUS_FAILED_PRECONDITION;
    case PX_E_OUT_OF_RANGE: return GRPC_STATUS_OUT_OF_RANGE;
    case PX_E_EXISTS: return GRPC_STATUS_ALREADY_EXISTS;
    case PX_E_CANCELLED: return GRPC_STATUS_CANCELLED;
    case PX_E_TIMEOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case PX_E_INTERNAL: return GRPC_STATUS_INTERNAL;
    case PX_E_UNAUTHENTICATED: return GRPC_STATUS_UNAUTHENTICATED;
    }
    return GRPC_STATUS_UNKNOWN;
}

const char *px_grpc_status_name(grpc_status_code code) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &google__rpc__code__descriptor, (int)code);
    return v ? v->name : "UNKNOWN";
}
