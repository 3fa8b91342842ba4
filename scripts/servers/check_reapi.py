#!/usr/bin/env python3
"""Readiness and round-trip check of the REAPI v2 cache (BuildGrid) started by
scripts/remote-servers.sh. Run with the venv's python (it needs grpcio and the REAPI
protos BuildGrid ships).

    check_reapi.py [--target 127.0.0.1:28980] [--instance ""] [--wait SECONDS]

Checks, in order (exit 0 when all pass, 1 with a message otherwise):
  - GetCapabilities answers (retried until --wait seconds have passed: this is the
    readiness poll) and advertises the CAS and an ActionCache that allows updates;
  - BatchUpdateBlobs, then FindMissingBlobs says the blob is present and an unknown one
    missing, and BatchReadBlobs returns the bytes;
  - ByteStream Write then Read of a blob round-trips;
  - UpdateActionResult then GetActionResult round-trips (the result's stdout_digest
    points at a blob stored above);
  - GetActionResult of an ActionResult whose stdout_digest blob is NOT in CAS answers
    NOT_FOUND: BuildGrid validates referenced blobs (reported, not a failure either way).
"""

import argparse
import hashlib
import os
import sys
import time
import uuid

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import (
    remote_execution_pb2 as re,
    remote_execution_pb2_grpc as re_grpc,
)
from buildgrid._protos.google.bytestream import bytestream_pb2 as bs, bytestream_pb2_grpc as bs_grpc


def digest(data: bytes) -> re.Digest:
    return re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def fail(msg: str) -> None:
    print(f"check_reapi: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="127.0.0.1:28980")
    ap.add_argument("--instance", default="")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the server to answer")
    args = ap.parse_args()
    inst = args.instance

    channel = grpc.insecure_channel(args.target)
    caps_stub = re_grpc.CapabilitiesStub(channel)
    cas = re_grpc.ContentAddressableStorageStub(channel)
    ac = re_grpc.ActionCacheStub(channel)
    bstream = bs_grpc.ByteStreamStub(channel)

    # Readiness: poll GetCapabilities.
    deadline = time.monotonic() + args.wait
    while True:
        try:
            caps = caps_stub.GetCapabilities(re.GetCapabilitiesRequest(instance_name=inst), timeout=2)
            break
        except grpc.RpcError as e:
            if time.monotonic() > deadline:
                fail(f"GetCapabilities: {e.code()}: {e.details()}")
            time.sleep(0.3)
    cc = caps.cache_capabilities
    if re.DigestFunction.SHA256 not in cc.digest_functions:
        fail(f"SHA256 not in digest_functions: {list(cc.digest_functions)}")
    if not cc.action_cache_update_capabilities.update_enabled:
        fail("action_cache_update_capabilities.update_enabled is false")
    print(
        f"check_reapi: capabilities ok (api {caps.low_api_version.major}.{caps.low_api_version.minor}"
        f"..{caps.high_api_version.major}.{caps.high_api_version.minor}, "
        f"max_batch_total_size_bytes={cc.max_batch_total_size_bytes})"
    )

    # CAS: BatchUpdateBlobs -> FindMissingBlobs -> BatchReadBlobs.
    nonce = uuid.uuid4().hex.encode()
    blob = b"larder check_reapi blob " + nonce
    d = digest(blob)
    absent = digest(b"larder check_reapi absent " + nonce)
    resp = cas.BatchUpdateBlobs(
        re.BatchUpdateBlobsRequest(
            instance_name=inst, requests=[re.BatchUpdateBlobsRequest.Request(digest=d, data=blob)]
        ),
        timeout=10,
    )
    if [r.status.code for r in resp.responses] != [0]:
        fail(f"BatchUpdateBlobs: {resp}")
    missing = cas.FindMissingBlobs(
        re.FindMissingBlobsRequest(instance_name=inst, blob_digests=[d, absent]), timeout=10
    ).missing_blob_digests
    if [m.hash for m in missing] != [absent.hash]:
        fail(f"FindMissingBlobs: expected only the absent blob missing, got {[m.hash for m in missing]}")
    read = cas.BatchReadBlobs(re.BatchReadBlobsRequest(instance_name=inst, digests=[d]), timeout=10)
    if len(read.responses) != 1 or read.responses[0].status.code != 0 or read.responses[0].data != blob:
        fail(f"BatchReadBlobs: {read}")
    print("check_reapi: CAS BatchUpdateBlobs/FindMissingBlobs/BatchReadBlobs ok")

    # ByteStream: Write then Read (two chunks).
    big = os.urandom(100_000) + nonce
    bd = digest(big)
    prefix = f"{inst}/" if inst else ""
    wname = f"{prefix}uploads/{uuid.uuid4()}/blobs/{bd.hash}/{bd.size_bytes}"
    half = len(big) // 2

    def chunks():
        yield bs.WriteRequest(resource_name=wname, write_offset=0, data=big[:half])
        yield bs.WriteRequest(write_offset=half, data=big[half:], finish_write=True)

    wr = bstream.Write(chunks(), timeout=10)
    if wr.committed_size != len(big):
        fail(f"ByteStream.Write committed_size {wr.committed_size} != {len(big)}")
    got = b"".join(
        r.data
        for r in bstream.Read(bs.ReadRequest(resource_name=f"{prefix}blobs/{bd.hash}/{bd.size_bytes}"), timeout=10)
    )
    if got != big:
        fail("ByteStream.Read returned different bytes")
    print("check_reapi: ByteStream Write/Read ok")

    # ActionCache: UpdateActionResult -> GetActionResult.
    action = digest(b"larder check_reapi action " + nonce)
    result = re.ActionResult(exit_code=0, stdout_digest=d)
    result.output_files.add(path="out/file", digest=bd)
    ac.UpdateActionResult(
        re.UpdateActionResultRequest(instance_name=inst, action_digest=action, action_result=result), timeout=10
    )
    got_ar = ac.GetActionResult(re.GetActionResultRequest(instance_name=inst, action_digest=action), timeout=10)
    if got_ar.stdout_digest != d or [f.digest for f in got_ar.output_files] != [bd]:
        fail(f"GetActionResult returned a different result: {got_ar}")
    try:
        ac.GetActionResult(
            re.GetActionResultRequest(instance_name=inst, action_digest=digest(b"no such action " + nonce)),
            timeout=10,
        )
        fail("GetActionResult of an unknown action did not answer NOT_FOUND")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            fail(f"GetActionResult of an unknown action: {e.code()}: {e.details()}")
    print("check_reapi: ActionCache UpdateActionResult/GetActionResult ok")

    # Does GetActionResult validate that referenced blobs exist? (informational)
    dangling = re.ActionResult(exit_code=0, stdout_digest=digest(b"never uploaded " + nonce))
    action2 = digest(b"larder check_reapi dangling action " + nonce)
    ac.UpdateActionResult(
        re.UpdateActionResultRequest(instance_name=inst, action_digest=action2, action_result=dangling), timeout=10
    )
    try:
        ac.GetActionResult(re.GetActionResultRequest(instance_name=inst, action_digest=action2), timeout=10)
        print("check_reapi: note: GetActionResult does NOT check referenced blobs (dangling stdout_digest served)")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            fail(f"GetActionResult of a dangling result: {e.code()}: {e.details()}")
        print("check_reapi: note: GetActionResult checks referenced blobs (dangling stdout_digest -> NOT_FOUND)")

    print("check_reapi: all ok")


if __name__ == "__main__":
    main()
