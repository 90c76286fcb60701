"""Uploads one file to a tus server with the real tuspy client, as tests/tus.rs drives it.

    python3 tuspy-upload.py --file PATH (--endpoint URL | --url URL) [--token T]
        [--chunk-size N] [--metadata JSON] [--stop-at N] [--checksum]

--endpoint creates a new upload; --url resumes one with a new uploader (which asks the server
for the offset with a HEAD). --stop-at N sends bytes up to offset N, each PATCH answered, then
stops. --checksum sends an `Upload-Checksum` (tuspy's sha1) with every PATCH.

Prints one JSON object on stdout and exits 0 when the upload got as far as asked:
    {"outcome": "success"|"stopped"|"error", "url", "offset", "size", "start_offset",
     "media_id", "status", "error"}
"""

import argparse
import json
import os
import sys

from tusclient import client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True)
    p.add_argument("--endpoint")
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--chunk-size", type=int, default=1 << 20)
    p.add_argument("--metadata", default="{}")
    p.add_argument("--stop-at", type=int)
    p.add_argument("--checksum", action="store_true")
    a = p.parse_args()

    size = os.path.getsize(a.file)
    headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
    result = {
        "outcome": "error",
        "url": a.url,
        "offset": None,
        "size": size,
        "start_offset": None,
        "media_id": None,
        "status": None,
        "error": None,
    }
    try:
        c = client.TusClient(a.endpoint or a.url, headers=headers)
        # With `url=`, the uploader asks the server for the offset (HEAD) as it is made.
        uploader = c.uploader(
            a.file,
            url=a.url,
            chunk_size=a.chunk_size,
            metadata=json.loads(a.metadata),
            upload_checksum=a.checksum,
        )
        result["start_offset"] = uploader.offset if a.url else 0
        stop_at = a.stop_at if a.stop_at is not None else size
        # `upload(stop_at=N)` sends chunks until the offset reaches N; each PATCH is answered
        # before the next one starts.
        uploader.upload(stop_at=stop_at)
        result["url"] = uploader.url
        result["offset"] = uploader.offset
        if uploader.request is not None:
            result["status"] = uploader.request.status_code
            result["media_id"] = uploader.request.response_headers.get("shoebox-media-id")
        result["outcome"] = "success" if uploader.offset == size else "stopped"
    except (TusCommunicationError, TusUploadFailed) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["status"] = getattr(e, "status_code", None)
        body = getattr(e, "response_content", None)
        result["body"] = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    print(json.dumps(result))
    return 1 if result["outcome"] == "error" else 0


if __name__ == "__main__":
    sys.exit(main())
