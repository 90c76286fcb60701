// S3 with the real AWS SDK for JavaScript v3 against a Shoebox S3 endpoint, as tests/s3 runs it.
//
//   node s3-js.mjs --endpoint URL --key ID --secret S --bucket B --file PATH
//
// Puts the file with a stream body (which the SDK sends aws-chunked, with a trailing checksum,
// even over plain HTTP), reads it back with GetObject and through a presigned GET URL, and
// prints one JSON object: {"ok": true, "sha256", "presigned_sha256", "etag"} or
// {"ok": false, "error"}.

import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { parseArgs } from "node:util";

import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const { values: a } = parseArgs({
  options: {
    endpoint: { type: "string" },
    key: { type: "string" },
    secret: { type: "string" },
    bucket: { type: "string", default: "default" },
    file: { type: "string" },
    "object-key": { type: "string", default: "js/stream.bin" },
  },
});

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

async function main() {
  const s3 = new S3Client({
    endpoint: a.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: a.key, secretAccessKey: a.secret },
    maxAttempts: 1,
  });
  const size = statSync(a.file).size;
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: a.bucket,
      Key: a["object-key"],
      Body: createReadStream(a.file),
      ContentLength: size,
      ContentType: "application/octet-stream",
    }),
  );
  const got = await s3.send(new GetObjectCommand({ Bucket: a.bucket, Key: a["object-key"] }));
  const bytes = Buffer.from(await got.Body.transformToByteArray());
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: a.bucket, Key: a["object-key"] }), {
    expiresIn: 300,
  });
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`the presigned GET answered ${res.status}: ${await res.text()}`);
  const presigned = Buffer.from(await res.arrayBuffer());
  return { sha256: sha256(bytes), presigned_sha256: sha256(presigned), etag: put.ETag, size: bytes.length };
}

try {
  const result = await main();
  console.log(JSON.stringify({ ok: true, ...result }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), code: e.Code ?? e.name, stack: e.stack }));
}
