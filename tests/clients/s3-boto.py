"""S3 scenarios run with the real boto3 against a Shoebox S3 endpoint, as tests/s3 drives them.

    python3 s3-boto.py SCENARIO --endpoint URL --key ID --secret S [--bucket B]
        [--file PATH] [--count N] [--checksums when_supported|when_required]

Scenarios (each asserts as it goes):
  objects    put, get (whole and ranged), head, conditional get, copy, delete, delete-many,
             list-object-versions, a bucket that will not go while it holds objects
  listing    --count keys under nested prefixes, then paginated listings (v2 and v1) with a
             prefix and a delimiter, checked against what was put
  multipart  upload_file of --file (multipart past 8 MiB), then parts by hand: out of order,
             listed, completed with S3's ETag; a wrong ETag, a small part and an abort
  parts      a multipart upload's parts (then, with --upload-id, its completion)
  put-file   put_object of --file, read back; prints its sha256 as stored
  presign    presigned GET and PUT (boto3's default SigV2 form and SigV4) used with urllib
  race       puts race/000 … race/<count - 1> once each, bodies naming --object-key
  refused    what a key may not do (--expect-denied-put), or a wrong secret
  hostile    what S3 clients may send wrong or on purpose: long keys, large bodies, too many
             keys, foreign upload ids, bad part numbers and ETags, malformed XML
  keys       every object of --bucket, with its size and ETag
  virtual    a put and a listing virtual-hosted style (--host BUCKET.DOMAIN), read back path-style
  writer     puts objects one after another until killed, printing each acknowledged key

Prints one JSON object on stdout: {"ok": true, ...} or {"ok": false, "error": ..., "code": ...}.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import time
import traceback
import urllib.parse

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError


def client(a, signature=None, secret=None, checksums=None):
    cfg = {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}}
    if signature:
        cfg["signature_version"] = signature
    if checksums:
        cfg["request_checksum_calculation"] = checksums
        cfg["response_checksum_validation"] = checksums
    s3 = boto3.client(
        "s3",
        endpoint_url=a.endpoint,
        verify=a.verify,
        aws_access_key_id=a.key,
        aws_secret_access_key=secret or a.secret,
        region_name="us-east-1",
        config=Config(**cfg),
    )
    if a.host:
        # The endpoint is an address; the request names the S3 host, as a custom domain would.
        def name_host(request, **_):
            request.headers["Host"] = a.host

        s3.meta.events.register("before-sign.s3", name_host)
    return s3


def code_of(e):
    return e.response.get("Error", {}).get("Code")


def expect_error(code, f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except ClientError as e:
        got = code_of(e)
        assert got == code, f"expected {code}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def objects(a):
    s3 = client(a, checksums=a.checksums)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    expect_error("BucketAlreadyOwnedByYou", s3.create_bucket, Bucket=b)
    s3.head_bucket(Bucket=b)
    assert b in [x["Name"] for x in s3.list_buckets()["Buckets"]]
    body = os.urandom(300_000)
    put = s3.put_object(
        Bucket=b,
        Key="photos/2024/one.bin",
        Body=body,
        ContentType="application/octet-stream",
        Metadata={"message-id": "m-42"},
    )
    etag = put["ETag"].strip('"')
    assert etag == hashlib.md5(body).hexdigest(), (etag, "is not the MD5")
    got = s3.get_object(Bucket=b, Key="photos/2024/one.bin")
    data = got["Body"].read()
    assert data == body, "the bytes read back differ"
    assert got["Metadata"].get("message-id") == "m-42", got["Metadata"]
    part = s3.get_object(Bucket=b, Key="photos/2024/one.bin", Range="bytes=100-199")
    assert part["Body"].read() == body[100:200]
    assert part["ContentRange"] == f"bytes 100-199/{len(body)}", part["ContentRange"]
    expect_error("InvalidRange", s3.get_object, Bucket=b, Key="photos/2024/one.bin", Range=f"bytes={len(body)}-")
    head = s3.head_object(Bucket=b, Key="photos/2024/one.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]
    # A conditional GET that matches is "304 Not Modified" (botocore raises it as a ClientError).
    try:
        s3.get_object(Bucket=b, Key="photos/2024/one.bin", IfNoneMatch=put["ETag"])
        raise AssertionError("If-None-Match with the current ETag did not answer 304")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, e
    expect_error("PreconditionFailed", s3.get_object, Bucket=b, Key="photos/2024/one.bin", IfMatch='"0000"')
    expect_error("NoSuchKey", s3.get_object, Bucket=b, Key="photos/2024/none.bin")
    expect_error("NoSuchBucket", s3.get_object, Bucket="no-such-bucket", Key="x")

    # Content-MD5 is checked before the object is kept.
    b64 = __import__("base64").b64encode
    s3.put_object(Bucket=b, Key="md5/ok.bin", Body=b"checked", ContentMD5=b64(hashlib.md5(b"checked").digest()).decode())
    expect_error("BadDigest", s3.put_object, Bucket=b, Key="md5/bad.bin", Body=b"checked",
                 ContentMD5=b64(hashlib.md5(b"other").digest()).decode())
    try:
        s3.head_object(Bucket=b, Key="md5/bad.bin")
        raise AssertionError("an object whose Content-MD5 did not match was kept")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e
    s3.delete_object(Bucket=b, Key="md5/ok.bin")

    # A put to an existing key replaces the object.
    second = os.urandom(1000)
    s3.put_object(Bucket=b, Key="photos/2024/one.bin", Body=second)
    assert s3.get_object(Bucket=b, Key="photos/2024/one.bin")["Body"].read() == second

    s3.copy_object(Bucket=b, Key="copies/one.bin", CopySource={"Bucket": b, "Key": "photos/2024/one.bin"})
    assert s3.get_object(Bucket=b, Key="copies/one.bin")["Body"].read() == second

    versions = s3.list_object_versions(Bucket=b)
    keys = sorted(v["Key"] for v in versions.get("Versions", []))
    assert keys == ["copies/one.bin", "photos/2024/one.bin"], keys
    assert all(v["VersionId"] == "null" for v in versions["Versions"])

    expect_error("BucketNotEmpty", s3.delete_bucket, Bucket=b)
    s3.delete_object(Bucket=b, Key="copies/one.bin")
    s3.delete_object(Bucket=b, Key="copies/one.bin")  # deletes are idempotent
    for i in range(5):
        s3.put_object(Bucket=b, Key=f"many/{i}", Body=b"x" * i)
    out = s3.delete_objects(
        Bucket=b,
        Delete={"Objects": [{"Key": f"many/{i}"} for i in range(5)] + [{"Key": "photos/2024/one.bin"}]},
    )
    assert len(out.get("Deleted", [])) == 6 and not out.get("Errors"), out
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0
    s3.delete_bucket(Bucket=b)
    assert b not in [x["Name"] for x in s3.list_buckets()["Buckets"]]
    return {"etag": etag}


def listing(a):
    s3 = client(a)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    keys = []
    for i in range(a.count):
        # Nested prefixes, a space and non-ASCII text, which encoding-type=url carries.
        k = f"set/{i % 7:02d}/item {i:05d}-é.txt"
        keys.append(k)
        s3.put_object(Bucket=b, Key=k, Body=str(i).encode())
    s3.put_object(Bucket=b, Key="top.txt", Body=b"top")
    keys.append("top.txt")
    pages = 0
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="set/", PaginationConfig={"PageSize": 250}):
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])]
    want = sorted(k for k in keys if k.startswith("set/"))
    assert seen == sorted(want, key=lambda k: k.encode()), "v2 pages do not list every key once, in order"
    prefixes = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="set/", Delimiter="/", PaginationConfig={"PageSize": 3}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert not page.get("Contents"), "keys under sub-prefixes leaked past the delimiter"
    assert prefixes == [f"set/{i:02d}/" for i in range(min(7, a.count))], prefixes
    v1 = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=b, PaginationConfig={"PageSize": 400}):
        v1 += [o["Key"] for o in page.get("Contents", [])]
    assert v1 == sorted(keys, key=lambda k: k.encode()), "v1 pages do not list every key once"
    top = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [o["Key"] for o in top.get("Contents", [])] == ["top.txt"]
    assert [p["Prefix"] for p in top.get("CommonPrefixes", [])] == ["set/"]
    after = s3.list_objects_v2(Bucket=b, StartAfter=want[10], Prefix="set/", MaxKeys=5)
    assert [o["Key"] for o in after["Contents"]] == want[11:16]
    return {"keys": len(seen), "pages": pages}


def put_file(a):
    s3 = client(a, checksums=a.checksums)
    sent = {}

    def note(request, **_):
        # What the SDK chose for the body: its payload mode, encoding and trailer.
        for h in ("x-amz-content-sha256", "Content-Encoding", "x-amz-trailer"):
            if h in request.headers:
                v = request.headers[h]
                sent[h.lower()] = v.decode() if isinstance(v, bytes) else v

    s3.meta.events.register("before-send.s3.PutObject", note)
    with open(a.file, "rb") as f:
        data = f.read()
    if a.stream:
        # A body of unknown length: botocore sends it aws-chunked with a trailing checksum.
        s3.put_object(Bucket=a.bucket, Key=a.object_key, Body=io.BufferedReader(io.BytesIO(data)))
    else:
        s3.put_object(Bucket=a.bucket, Key=a.object_key, Body=data)
    back = s3.get_object(Bucket=a.bucket, Key=a.object_key)["Body"].read()
    assert back == data, "the bytes read back differ"
    return {"sha256": sha256(back), "size": len(back), "sent": sent}


def fetch(url, method="GET", data=None):
    # requests, as apps use presigned URLs: it sends no Content-Type of its own for bytes,
    # which a SigV2 signature covers.
    r = requests.request(method, url, data=data, timeout=30)
    return r.status_code, r.content


def tamper(url):
    """The URL with one character of its signature changed."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    changed = []
    for k, v in query:
        if k in ("Signature", "X-Amz-Signature"):
            v = v[:-2] + ("0" if v[-2] != "0" else "1") + v[-1]
        changed.append((k, v))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(changed)))


def presign(a):
    out = {}
    for sig in (None, "s3v4"):
        s3 = client(a, signature=sig)
        name = sig or "default"
        key = f"presigned/{name}.bin"
        body = os.urandom(5000)
        put_url = s3.generate_presigned_url("put_object", Params={"Bucket": a.bucket, "Key": key}, ExpiresIn=300)
        status, _ = fetch(put_url, "PUT", body)
        assert status == 200, f"{name} presigned PUT answered {status}"
        get_url = s3.generate_presigned_url("get_object", Params={"Bucket": a.bucket, "Key": key}, ExpiresIn=300)
        status, got = fetch(get_url)
        assert status == 200 and got == body, f"{name} presigned GET answered {status}"
        tampered = tamper(get_url)
        status, text = fetch(tampered)
        assert status == 403 and b"SignatureDoesNotMatch" in text, (status, text[:300])
        out[name] = "v2" if "AWSAccessKeyId=" in get_url else "v4"
        expired = s3.generate_presigned_url("get_object", Params={"Bucket": a.bucket, "Key": key}, ExpiresIn=1)
        time.sleep(2.5)
        status, text = fetch(expired)
        assert status == 403 and b"AccessDenied" in text, (status, text[:300])
    return out


def refused(a):
    s3 = client(a, secret=a.wrong_secret)
    err = None
    try:
        s3.put_object(Bucket=a.bucket, Key=a.object_key, Body=b"refused")
    except ClientError as e:
        err = code_of(e)
    return {"code": err}


def multipart(a):
    s3 = client(a, checksums=a.checksums)
    b = a.bucket
    with open(a.file, "rb") as f:
        data = f.read()
    # boto3's managed transfer goes multipart past 8 MiB, with its parts sent side by side.
    s3.upload_file(a.file, b, "big/video.bin")
    head = s3.head_object(Bucket=b, Key="big/video.bin")
    assert head["ContentLength"] == len(data), head
    assert "-" in head["ETag"], f"a multipart ETag, not {head['ETag']}"
    back = s3.get_object(Bucket=b, Key="big/video.bin")["Body"].read()
    assert back == data, "the multipart object differs from the file"

    # By hand: parts out of order, listed, completed; the ETag is S3's.
    mib5 = 5 * 1024 * 1024
    p1, p2 = os.urandom(mib5), os.urandom(1024)
    up = s3.create_multipart_upload(Bucket=b, Key="manual.bin", Metadata={"origin": "parts"})
    uid = up["UploadId"]
    e2 = s3.upload_part(Bucket=b, Key="manual.bin", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    e1 = s3.upload_part(Bucket=b, Key="manual.bin", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    listed = s3.list_parts(Bucket=b, Key="manual.bin", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, mib5), (2, 1024)], listed
    uploads = s3.list_multipart_uploads(Bucket=b).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [uid], uploads
    expect_error("InvalidPart", s3.complete_multipart_upload, Bucket=b, Key="manual.bin", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}, {"PartNumber": 2, "ETag": e2}]})
    done = s3.complete_multipart_upload(Bucket=b, Key="manual.bin", UploadId=uid,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest() + "-2"
    assert done["ETag"].strip('"') == want, (done["ETag"], want)
    got = s3.get_object(Bucket=b, Key="manual.bin")
    assert got["Body"].read() == p1 + p2
    assert got["ETag"].strip('"') == want
    assert got["Metadata"].get("origin") == "parts", got["Metadata"]
    expect_error("NoSuchUpload", s3.upload_part, Bucket=b, Key="manual.bin", UploadId=uid, PartNumber=3, Body=b"x")

    # A part too small but last, and an aborted upload.
    up = s3.create_multipart_upload(Bucket=b, Key="small.bin")["UploadId"]
    t1 = s3.upload_part(Bucket=b, Key="small.bin", UploadId=up, PartNumber=1, Body=b"tiny")["ETag"]
    t2 = s3.upload_part(Bucket=b, Key="small.bin", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
    expect_error("EntityTooSmall", s3.complete_multipart_upload, Bucket=b, Key="small.bin", UploadId=up,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": t1}, {"PartNumber": 2, "ETag": t2}]})
    s3.abort_multipart_upload(Bucket=b, Key="small.bin", UploadId=up)
    assert not s3.list_multipart_uploads(Bucket=b).get("Uploads"), "the aborted upload is listed"
    return {"sha256": sha256(back), "etag": head["ETag"].strip('"')}


def raw(a, method, path, body=b"", headers=None, claimed_sha256=None):
    """A request boto3 would not send, signed as boto3 signs (for a body whose sha256 is
    `claimed_sha256`, when given, whatever the body is)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class Signer(S3SigV4Auth):
        def payload(self, request):
            return claimed_sha256 or super().payload(request)

    req = AWSRequest(method=method, url=a.endpoint + path, data=body, headers=headers or {})
    Signer(Credentials(a.key, a.secret), "s3", "us-east-1").add_auth(req)
    r = requests.request(method, req.url, data=body, headers=dict(req.headers), timeout=60)
    return r.status_code, r.text


def hostile(a):
    s3 = client(a)
    b = a.bucket
    s3.create_bucket(Bucket=b)
    expect_error("KeyTooLongError", s3.put_object, Bucket=b, Key="k" * 1025, Body=b"x")
    expect_error("EntityTooLarge", s3.put_object, Bucket=b, Key="big.bin", Body=os.urandom(2 << 20))
    expect_error("MalformedXML", s3.delete_objects, Bucket=b,
                 Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})
    expect_error("NoSuchUpload", s3.upload_part, Bucket=b, Key="x", UploadId="0" * 32, PartNumber=1, Body=b"x")
    expect_error("NoSuchUpload", s3.complete_multipart_upload, Bucket=b, Key="x", UploadId="../../etc",
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
    up = s3.create_multipart_upload(Bucket=b, Key="x")["UploadId"]
    expect_error("InvalidArgument", s3.upload_part, Bucket=b, Key="x", UploadId=up, PartNumber=10001, Body=b"x")
    expect_error("InvalidPart", s3.complete_multipart_upload, Bucket=b, Key="x", UploadId=up,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
    s3.abort_multipart_upload(Bucket=b, Key="x", UploadId=up)
    expect_error("NoSuchKey", s3.copy_object, Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "absent"})
    expect_error("InvalidArgument", s3.list_objects_v2, Bucket=b, ContinuationToken="not-a-token!")
    out = {}
    for name, body in [
        ("garbage", b"<Delete><Object><Key>a</Key></Obj"),
        ("not xml", os.urandom(4000)),
        ("deep", b"<Delete>" + b"<Object>" * 20000 + b"</Delete>"),
        ("huge", b"<Delete>" + b"<Object><Key>k</Key></Object>" * 400000 + b"</Delete>"),
    ]:
        md5 = __import__("base64").b64encode(hashlib.md5(body).digest()).decode()
        status, text = raw(a, "POST", f"/{b}?delete", body, {"Content-MD5": md5})
        assert 400 <= status < 500, (name, status, text[:300])
        out[name] = status
    # A body that is not the one its signed sha256 names.
    status, text = raw(a, "PUT", f"/{b}/h.bin", b"x" * 10, claimed_sha256="0" * 64)
    assert status == 400 and "XAmzContentSHA256Mismatch" in text, (status, text[:300])
    listed = s3.list_objects_v2(Bucket=b)
    assert listed["KeyCount"] == 0, listed
    return out


def virtual(a):
    """Virtual-hosted style: the bucket in the host name (`--host`), the key in the path."""
    body = os.urandom(3000)
    status, text = raw(a, "PUT", "/vhost/object.bin", body, {"Host": a.host})
    assert status == 200, (status, text[:300])
    bucket = a.host.split(".")[0]
    host, a.host = a.host, None
    s3 = client(a)  # path-style, on the endpoint's own host, reading it back
    a.host = host
    got = s3.get_object(Bucket=bucket, Key="vhost/object.bin")["Body"].read()
    assert got == body, "the object put virtual-hosted style differs"
    status, text = raw(a, "GET", "/?list-type=2", b"", {"Host": a.host})
    assert status == 200 and "<Key>vhost/object.bin</Key>" in text, (status, text[:300])
    return {}


def parts(a):
    """Phase one (no --upload-id): starts an upload of --file and sends its parts, 5 MiB each,
    printing the upload id and the parts' ETags. Phase two (--upload-id, --etags): completes it
    and reads the object back."""
    s3 = client(a)
    with open(a.file, "rb") as f:
        data = f.read()
    size = 5 << 20
    if not a.upload_id:
        uid = s3.create_multipart_upload(Bucket=a.bucket, Key=a.object_key)["UploadId"]
        etags = []
        for n, at in enumerate(range(0, len(data), size), start=1):
            e = s3.upload_part(Bucket=a.bucket, Key=a.object_key, UploadId=uid, PartNumber=n,
                               Body=data[at:at + size])["ETag"]  # fmt: skip
            etags.append(e)
        return {"upload_id": uid, "etags": etags}
    etags = json.loads(a.etags)
    listed = s3.list_parts(Bucket=a.bucket, Key=a.object_key, UploadId=a.upload_id)["Parts"]
    assert [p["ETag"] for p in listed] == etags, (listed, etags)
    s3.complete_multipart_upload(
        Bucket=a.bucket, Key=a.object_key, UploadId=a.upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )  # fmt: skip
    back = s3.get_object(Bucket=a.bucket, Key=a.object_key)["Body"].read()
    assert back == data, "the object completed after the restart differs"
    return {"sha256": sha256(back)}


def race(a):
    """Puts race/000 … race/<count - 1>, each once, with bodies that name --object-key (the
    writer): two of these at once, on two instances, put every key at nearly the same time."""
    s3 = client(a)
    for i in range(a.count):
        s3.put_object(Bucket=a.bucket, Key=f"race/{i:03d}", Body=f"{a.object_key} {i}".encode())
    return {"written": a.count}


def keys(a):
    s3 = client(a)
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=a.bucket):
        out += [{"key": o["Key"], "size": o["Size"], "etag": o["ETag"].strip('"')} for o in page.get("Contents", [])]
    return {"objects": out}


def writer(a):
    from boto3.s3.transfer import TransferConfig

    s3 = client(a)
    parts = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=4)
    i = 0
    while True:
        key = f"crash/{i:06d}.bin"
        if a.multipart_every and i % a.multipart_every == a.multipart_every - 1:
            # Three parts, sent side by side, then the completion.
            body = os.urandom((11 << 20) + i)
            s3.upload_fileobj(io.BytesIO(body), a.bucket, key, Config=parts)
        else:
            body = os.urandom(1 + (i * 7919) % 200_000)
            s3.put_object(Bucket=a.bucket, Key=key, Body=body)
        # Printed only once the 200 is in.
        print(json.dumps({"acked": key, "sha256": sha256(body)}), flush=True)
        i += 1
        if a.count and i >= a.count:
            return {"written": i}


SCENARIOS = {
    "objects": objects,
    "hostile": hostile,
    "keys": keys,
    "listing": listing,
    "multipart": multipart,
    "parts": parts,
    "put-file": put_file,
    "presign": presign,
    "race": race,
    "refused": refused,
    "virtual": virtual,
    "writer": writer,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--endpoint", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--wrong-secret")
    p.add_argument("--host", help="the Host header to send (the endpoint's by default)")
    p.add_argument("--verify", help="the CA certificate of an https endpoint")
    p.add_argument("--bucket", default="default")
    p.add_argument("--object-key", default="file.bin")
    p.add_argument("--file")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--multipart-every", type=int, default=0)
    p.add_argument("--upload-id")
    p.add_argument("--etags", help="the parts' ETags, as JSON")
    p.add_argument("--checksums", choices=["when_supported", "when_required"])
    a = p.parse_args()
    try:
        result = SCENARIOS[a.scenario](a) or {}
        result["ok"] = True
    except ClientError as e:
        result = {"ok": False, "code": code_of(e), "error": str(e), "trace": traceback.format_exc()}
    except Exception as e:  # an assertion or a transport error
        result = {"ok": False, "error": repr(e), "trace": traceback.format_exc()}
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
