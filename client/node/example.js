'use strict';
/*
 * Calling pyexec from Node.js: load the proto at run time with
 * @grpc/proto-loader, run hello world synchronously, evaluate an expression
 * REPL-style with Eval, then submit a project asynchronously and stream its
 * output live with StreamOutput.
 *
 *   PYEXEC_SERVER=127.0.0.1:50051 node example.js
 *   PYEXEC_SERVER=https://pyexec.example:50051 PYEXEC_TLS_CA=ca.pem \
 *     PYEXEC_TOKEN=... node example.js        # TLS, and a tenant's token
 *
 * PYEXEC_TLS_CERT and PYEXEC_TLS_KEY add a client certificate (mutual TLS).
 * Exits with the streamed program's exit code.
 */
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');
// A sync result carries up to the server's output cap (16 MiB by default).
const MAX_RECEIVE_BYTES = 128 * 1024 * 1024;

/**
 * The grpc-js target and whether it is TLS, for an address as people write
 * it: "host:port", "http://host:port", "grpc://host:port" (plaintext) or
 * "https://host[:port]" (TLS, port 443 by default), "grpcs://host:port".
 */
function target(address) {
  const m = /^(https?|grpcs?):\/\/([^/]+)\/?$/.exec(address);
  if (!m) return {target: address, tls: false};
  const tls = m[1] === 'https' || m[1] === 'grpcs';
  const hasPort = /:\d+$/.test(m[2]);
  return {target: hasPort ? m[2] : `${m[2]}:${m[1] === 'https' ? 443 : 50051}`, tls};
}

/**
 * Loads the service definitions and returns {executor, health, close}.
 * `opts`: tlsCa, tlsCert, tlsKey (PEM file names; tlsCa makes the channel
 * TLS whatever the scheme; default PYEXEC_TLS_CA, PYEXEC_TLS_CERT,
 * PYEXEC_TLS_KEY) and token (sent with every call as
 * "authorization: Bearer TOKEN"; default PYEXEC_TOKEN).
 */
function connect(address, opts = {}) {
  const env = process.env;
  const tlsCa = opts.tlsCa || env.PYEXEC_TLS_CA;
  const tlsCert = opts.tlsCert || env.PYEXEC_TLS_CERT;
  const tlsKey = opts.tlsKey || env.PYEXEC_TLS_KEY;
  const token = opts.token || env.PYEXEC_TOKEN;
  const t = target(address);
  const def = protoLoader.loadSync(
    ['pyexec/v1/executor.proto', 'grpc/health/v1/health.proto'],
    {
      includeDirs: [PROTO_DIR, '/usr/include'],
      keepCase: true, // field names as in the proto: execution_id, exit_code
      longs: Number, // int64 (offset, duration_ms) as numbers
      enums: String, // 'EXECUTION_STATUS_COMPLETED'
      defaults: true,
    });
  const pkg = grpc.loadPackageDefinition(def);
  const read = (f) => (f ? fs.readFileSync(f) : null);
  const creds = t.tls || tlsCa || tlsCert ?
    grpc.credentials.createSsl(read(tlsCa), read(tlsKey), read(tlsCert)) :
    grpc.credentials.createInsecure();
  const options = {'grpc.max_receive_message_length': MAX_RECEIVE_BYTES};
  if (token) {
    // Every call carries the tenant's token (TLS or not).
    options.interceptors = [(callOptions, nextCall) =>
      new grpc.InterceptingCall(nextCall(callOptions), {
        start(metadata, listener, next) {
          metadata.set('authorization', `Bearer ${token}`);
          next(metadata, listener);
        },
      })];
  }
  const executor = new pkg.pyexec.v1.ExecutorService(t.target, creds, options);
  const health = new pkg.grpc.health.v1.Health(t.target, creds, options);
  return {
    executor,
    health,
    close() {
      executor.close();
      health.close();
    },
  };
}

/** Promise wrapper of a unary call. */
function unary(client, method, request, deadlineMs = 60000) {
  return new Promise((resolve, reject) => {
    client[method](request, {deadline: Date.now() + deadlineMs}, (err, res) =>
      err ? reject(err) : resolve(res));
  });
}

/** A request for one file, main.py, holding `code`. */
function request(code, extra = {}) {
  return {
    files: [{path: 'main.py', content: Buffer.from(code), mode: 0o644}],
    metadata: {entrypoint: 'main.py'},
    ...extra,
  };
}

/**
 * Eval: runs `code` (as main.py) REPL-style and resolves with
 * {result, error, stdout, stderr, exitCode}: result is the repr() of the last
 * expression's value (null when there is none), error {type, line, message}
 * when the code raised (null otherwise). `extra` adds EvalRequest fields,
 * e.g. {python_version: '3.13'}.
 */
async function evaluate(executor, code, extra = {}) {
  const res = await unary(executor, 'Eval', {code, ...extra});
  return {
    result: res.result ? res.result.value : null,
    error: res.error_type ?
      {type: res.error_type, line: res.error_line, message: res.error_message} : null,
    stdout: res.stdout.toString(),
    stderr: res.stderr.toString(),
    exitCode: res.exit_code,
  };
}

/**
 * Streams execution `id` from `offset`, calling onChunk({stream, data,
 * offset}) for each piece of output; resolves with the terminal result.
 */
function streamOutput(executor, id, onChunk, offset = 0) {
  return new Promise((resolve, reject) => {
    let result = null;
    // protobufjs encodes every field that is set, even to its default value;
    // leave defaults unset so the message is canonically encoded.
    const req = offset ? {execution_id: id, offset} : {execution_id: id};
    const call = executor.StreamOutput(req);
    call.on('data', (chunk) => {
      if (chunk.result) {
        result = chunk.result;
      } else if (chunk.data.length > 0) {
        onChunk({stream: chunk.stream, data: chunk.data, offset: chunk.offset});
      }
    });
    call.on('error', reject);
    call.on('end', () =>
      result ? resolve(result) : reject(new Error('stream ended without a result')));
  });
}

async function main() {
  const address = process.env.PYEXEC_SERVER || '127.0.0.1:50051';
  const c = connect(address);
  try {
    const hc = await unary(c.health, 'Check', {}); // service '' (the whole server)
    console.error(`health: ${hc.status}`);

    const hello = await unary(c.executor, 'Execute', request("print('Hello, World!')"));
    process.stdout.write(hello.stdout);
    console.error(`hello world: ${hello.status}, exit code ${hello.exit_code}`);

    const answer = await evaluate(c.executor, 'import math\nmath.factorial(10)');
    console.error(`eval: ${answer.result}`); // 3628800
    const failed = await evaluate(c.executor, 'x = 1\nx / 0', {python_version: '3.13'});
    console.error(`eval raised ${failed.error.type} on line ${failed.error.line}: ` +
                  failed.error.message);

    const code = [
      'import sys, time',
      'for i in range(3):',
      "    print(f'tick {i}')",
      '    time.sleep(0.2)',
      "sys.stderr.write('done\\n')",
    ].join('\n');
    const sub = await unary(c.executor, 'Execute', request(code, {async: true}));
    console.error(`submitted ${sub.execution_id} (${sub.status})`);
    const result = await streamOutput(c.executor, sub.execution_id, (chunk) =>
      (chunk.stream === 'STREAM_STDERR' ? process.stderr : process.stdout).write(chunk.data));
    console.error(`finished: ${result.status}, reason ${result.reason}, ` +
                  `exit code ${result.exit_code}`);
    return result.exit_code;
  } finally {
    c.close();
  }
}

module.exports = {connect, target, unary, request, evaluate, streamOutput};

if (require.main === module) {
  main().then((code) => process.exit(code), (err) => {
    console.error(`pyexec example: ${err.message}`);
    process.exit(125);
  });
}
