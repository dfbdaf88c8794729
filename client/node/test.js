'use strict';
/*
 * node --test: the Node example against a running pyexec server.
 * Uses PYEXEC_SERVER when set; otherwise starts the server binary
 * ($PYEXECD_BIN, default <repo>/bazel-bin/server/pyexecd) on a free
 * loopback port and stops it (by pid) at the end.
 */
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const {spawn} = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const {connect, unary, request, evaluate, streamOutput} = require('./example.js');

const REPO = path.resolve(__dirname, '..', '..');

/** Starts pyexecd and resolves with {address, stop}. */
function startServer() {
  const bin = process.env.PYEXECD_BIN || path.join(REPO, 'bazel-bin', 'server', 'pyexecd');
  if (!fs.existsSync(bin)) {
    throw new Error(`no server: set PYEXEC_SERVER, or build //server:pyexecd (${bin})`);
  }
  // Its own instance name: a server reaps the containers of its instance
  // that it does not own, including those of other test servers.
  const args = ['--listen', '127.0.0.1:0', '--instance', `client-node-${process.pid}`];
  if (process.env.PYEXEC_TEST_IMAGE) args.push('--default-image', process.env.PYEXEC_TEST_IMAGE);
  const child = spawn(bin, args, {stdio: ['ignore', 'pipe', 'inherit']});
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error('pyexecd printed no address within 30 s'));
    }, 30000);
    const lines = readline.createInterface({input: child.stdout});
    lines.once('line', (line) => {
      clearTimeout(timer);
      const m = /^listening on (\S+:\d+)$/.exec(line.trim());
      if (!m) {
        stop();
        reject(new Error(`unexpected first line from pyexecd: ${line}`));
        return;
      }
      child.stdout.resume(); // keep draining
      resolve({address: m[1], stop});
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

let server = null;
let c = null;

test.before(async () => {
  let address = process.env.PYEXEC_SERVER;
  if (!address) {
    server = await startServer();
    address = server.address;
  }
  c = connect(address);
});

test.after(async () => {
  if (c) c.close();
  if (server) await server.stop();
});

test('health check reports SERVING', async () => {
  const res = await unary(c.health, 'Check', {});
  assert.strictEqual(res.status, 'SERVING');
});

test('runs hello world synchronously', async () => {
  const res = await unary(c.executor, 'Execute', request("print('Hello, World!')"));
  assert.strictEqual(res.status, 'EXECUTION_STATUS_COMPLETED');
  assert.strictEqual(res.reason, 'TERMINATION_REASON_EXITED');
  assert.strictEqual(res.exit_code, 0);
  assert.ok(res.execution_id.startsWith('exe_'));
  assert.strictEqual(res.stdout.toString(), 'Hello, World!\n');
  assert.strictEqual(res.stderr.toString(), '');
});

test('streams the output of an async execution', async () => {
  const code = "import sys\nprint('out 1')\nsys.stderr.write('err\\n')\nprint('out 2')\nsys.exit(4)\n";
  const sub = await unary(c.executor, 'Execute', request(code, {async: true}));
  assert.ok(['EXECUTION_STATUS_PENDING', 'EXECUTION_STATUS_RUNNING'].includes(sub.status));
  const chunks = [];
  const result = await streamOutput(c.executor, sub.execution_id, (ch) => chunks.push(ch));
  const text = (s) => Buffer.concat(chunks.filter((ch) => ch.stream === s).map((ch) => ch.data))
    .toString();
  assert.strictEqual(text('STREAM_STDOUT'), 'out 1\nout 2\n');
  assert.strictEqual(text('STREAM_STDERR'), 'err\n');
  let offset = 0;
  for (const ch of chunks) {
    assert.strictEqual(ch.offset, offset);
    offset += ch.data.length;
  }
  assert.strictEqual(result.status, 'EXECUTION_STATUS_COMPLETED');
  assert.strictEqual(result.exit_code, 4);

  const got = await unary(c.executor, 'GetExecution', {execution_id: sub.execution_id});
  assert.strictEqual(got.stdout.toString(), 'out 1\nout 2\n');
});

test('an unknown execution id is NOT_FOUND', async () => {
  await assert.rejects(
    unary(c.executor, 'GetExecution', {execution_id: 'exe_00000000-0000-4000-8000-000000000000'}),
    (err) => err.code === grpc.status.NOT_FOUND);
});

test('Eval returns the value of the last expression', async () => {
  const r = await evaluate(c.executor, "print('side')\nxs = [3, 1, 2]\nsorted(xs)");
  assert.strictEqual(r.result, '[1, 2, 3]');
  assert.strictEqual(r.stdout, 'side\n');
  assert.strictEqual(r.error, null);
  assert.strictEqual((await evaluate(c.executor, 'x = 1')).result, null);
});

test('Eval reports the exception and its line', async () => {
  const r = await evaluate(c.executor, 'x = 1\nx / 0', {python_version: '3.13'});
  assert.strictEqual(r.result, null);
  assert.deepStrictEqual(r.error, {type: 'ZeroDivisionError', line: 2,
                                   message: 'division by zero'});
  assert.strictEqual(r.exitCode, 1);
  assert.match(r.stderr, /File "\/work\/main.py", line 2/);
});
