"""Generated protobuf and gRPC modules for the `smolrt.v1` API (proto/smolrt/v1/smolrt.proto).

Do not edit `smolrt_pb2*.py*` by hand: `make proto` regenerates them, and `make proto-check`
(part of `make lint`) fails when they drift from the proto. They live at `smolrt.v1` because
protoc names imports after the proto's path (`from smolrt.v1 import smolrt_pb2`), which this
package layout satisfies without post-processing.
"""
