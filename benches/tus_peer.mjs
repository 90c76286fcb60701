// The reference tus server that benches/tus.py runs beside Shoebox: @tus/server with
// @tus/file-store (which does not fsync), as its README shows, from tests/clients/node_modules.
//
//   node benches/tus_peer.mjs --host 127.0.0.1 --port PORT --directory DIR
//
// Uploads go to http://HOST:PORT/files; each one is stored as DIR/<id> with DIR/<id>.json.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const { values: o } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    directory: { type: 'string' },
  },
})
if (!o.port || !o.directory) {
  console.error('usage: node tus_peer.mjs --host HOST --port PORT --directory DIR')
  process.exit(2)
}

// The packages are installed for the test clients, not beside this script.
const clients = createRequire(new URL('../tests/clients/package.json', import.meta.url))
const load = (name) => import(pathToFileURL(clients.resolve(name)).href)
const { Server } = await load('@tus/server')
const { FileStore } = await load('@tus/file-store')

const server = new Server({ path: '/files', datastore: new FileStore({ directory: o.directory }) })
server.listen({ host: o.host, port: Number(o.port) })
