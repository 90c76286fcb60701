// Uploads one file to a tus server with the real tus-js-client (v4), as tests/tus.rs drives it.
//
//   node tus-upload.mjs --file PATH (--endpoint URL | --upload-url URL) [--token T]
//     [--chunk-size N] [--metadata JSON] [--stop-at FRACTION]
//     [--defer-length] [--data-during-creation] [--retry-delays JSON]
//
// --endpoint creates a new upload; --upload-url resumes one (a new `Upload` whose `uploadUrl`
// is the old URL, with no endpoint, so that a refused HEAD cannot quietly start over).
// --stop-at aborts in onChunkComplete once the acknowledged bytes reach that fraction of the
// file: the PATCH that got there has been answered, so every byte acknowledged is on the
// server and nothing more was sent.
//
// Prints one JSON object on stdout and exits 0 when the upload succeeded or stopped as asked:
//   {outcome: "success"|"stopped"|"error", url, offset, size, mediaId, status, error, requests}
// `requests` lists every request: method, url, the Upload-Offset sent, the status and the
// Upload-Offset answered.
import { createReadStream, readFileSync, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import * as tus from 'tus-js-client'

const { values: o } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    'upload-url': { type: 'string' },
    file: { type: 'string' },
    token: { type: 'string' },
    'chunk-size': { type: 'string', default: String(1 << 20) },
    metadata: { type: 'string', default: '{}' },
    'stop-at': { type: 'string' },
    'defer-length': { type: 'boolean', default: false },
    'data-during-creation': { type: 'boolean', default: false },
    'retry-delays': { type: 'string', default: 'null' },
  },
})

const size = statSync(o.file).size
const deferred = o['defer-length']
const requests = []
let finished = false

function finish(outcome, upload, extra) {
  if (finished) return
  finished = true
  const last = requests.filter((r) => r.offset != null).at(-1)
  const result = {
    outcome,
    url: upload.url,
    offset: last ? last.offset : null,
    size,
    mediaId: null,
    status: null,
    error: null,
    requests,
    ...extra,
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exitCode = outcome === 'error' ? 1 : 0
}

const options = {
  // Node needs a finite chunk size: each PATCH carries at most this many bytes.
  chunkSize: Number(o['chunk-size']),
  metadata: JSON.parse(o.metadata),
  headers: o.token ? { Authorization: `Bearer ${o.token}` } : {},
  // No retries unless asked: a refusal must reach the test as it was.
  retryDelays: JSON.parse(o['retry-delays']),
  uploadLengthDeferred: deferred,
  uploadDataDuringCreation: o['data-during-creation'],
  // The test keeps the URL itself; nothing is stored between runs.
  storeFingerprintForResuming: false,
  onBeforeRequest(req) {
    requests.push({
      method: req.getMethod(),
      url: req.getURL(),
      sentOffset: req.getHeader('Upload-Offset') ?? null,
      status: null,
      offset: null,
    })
  },
  onAfterResponse(req, res) {
    const entry = requests.findLast((r) => r.method === req.getMethod() && r.status == null)
    if (!entry) return
    entry.status = res.getStatus()
    const offset = res.getHeader('Upload-Offset')
    entry.offset = offset == null ? null : Number(offset)
  },
  onSuccess({ lastResponse }) {
    finish('success', upload, {
      status: lastResponse.getStatus(),
      mediaId: lastResponse.getHeader('Shoebox-Media-Id') ?? null,
      offset: size,
    })
  },
  onError(err) {
    const res = err.originalResponse
    finish('error', upload, {
      error: String(err.message ?? err),
      status: res ? res.getStatus() : null,
      body: res ? res.getBody() : null,
    })
  },
}
if (o['upload-url']) {
  options.uploadUrl = o['upload-url']
} else {
  options.endpoint = o.endpoint
}
if (!deferred) options.uploadSize = size

if (o['stop-at'] != null) {
  const stopAt = Number(o['stop-at']) * size
  options.onChunkComplete = (_chunk, accepted) => {
    if (accepted >= stopAt && accepted < size) {
      // Aborting here stops the next PATCH before it starts (tus-js-client checks after
      // this callback), so the server holds exactly `accepted` bytes.
      upload.abort().then(() => finish('stopped', upload, { offset: accepted }))
    }
  }
}

// A path-backed stream lets tus-js-client read any slice again; a deferred length needs a
// source that says when it ends by itself, so a Buffer.
const input = deferred ? readFileSync(o.file) : createReadStream(o.file)
const upload = new tus.Upload(input, options)
upload.start()
