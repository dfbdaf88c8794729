'use strict';
/*
 * node --test: the Node example over TLS and mutual TLS, and with a tenant's
 * token, against the server
 * with its scripted fake back-end (tests/server/rpc/fake_pyexecd, from
 * $FAKE_PYEXECD_BIN or bazel-bin), with certificates made by `openssl` at
 * test time. Skipped when that binary or openssl is missing.
 */
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const crypto = require('node:crypto');
const {spawn, execFileSync} = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const {connect, target, unary} = require('./example.js');

const REPO = path.resolve(__dirname, '..', '..');
const FAKE = process.env.FAKE_PYEXECD_BIN ||
  path.join(REPO, 'bazel-bin', 'tests', 'server', 'rpc', 'fake_pyexecd');

function haveOpenssl() {
  try {
    execFileSync('openssl', ['version'], {stdio: 'ignore'});
    return true;
  } catch {
    return false;
  }
}
const skip = !fs.existsSync(FAKE) ? `no ${FAKE}` : (!haveOpenssl() ? 'no openssl' : false);

/** A CA in `dir` and certificates it signs: issue(name, cn, server). */
function authority(dir, name) {
  const ssl = (...args) => execFileSync('openssl', args, {stdio: 'ignore'});
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = path.join(dir, `${name}.pem`);
  const caKey = path.join(dir, `${name}.key`);
  ssl('req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '2', '-subj', `/CN=${name}`);
  return {
    ca,
    issue(leaf, cn, server) {
      const base = path.join(dir, `${name}-${leaf}`);
      fs.writeFileSync(`${base}.ext`, server ?
        'subjectAltName=DNS:localhost,IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
      ssl('req', '-new', ...ec, '-keyout', `${base}.key`, '-out', `${base}.csr`,
          '-subj', `/CN=${cn}`);
      ssl('x509', '-req', '-in', `${base}.csr`, '-CA', ca, '-CAkey', caKey, '-CAcreateserial',
          '-out', `${base}.pem`, '-days', '1', '-extfile', `${base}.ext`);
      return {cert: `${base}.pem`, key: `${base}.key`};
    },
  };
}

/** Starts the fake server with `args`; resolves with {address, stop}. */
function startFake(args) {
  const child = spawn(FAKE, ['--listen', '127.0.0.1:0', '--log-level', 'warn', ...args],
                      {stdio: ['ignore', 'pipe', 'inherit']});
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    readline.createInterface({input: child.stdout}).once('line', (line) => {
      const m = /^listening on (\S+:\d+)$/.exec(line.trim());
      if (!m) {
        stop();
        reject(new Error(`unexpected first line: ${line}`));
        return;
      }
      child.stdout.resume();
      resolve({address: m[1], stop});
    });
    child.on('error', reject);
  });
}

test('addresses with a TLS scheme become TLS targets', () => {
  assert.deepStrictEqual(target('https://h'), {target: 'h:443', tls: true});
  assert.deepStrictEqual(target('grpcs://h:7/'), {target: 'h:7', tls: true});
  assert.deepStrictEqual(target('http://h:7'), {target: 'h:7', tls: false});
  assert.deepStrictEqual(target('h:7'), {target: 'h:7', tls: false});
});

test('the example speaks mutual TLS', {skip}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pyexec-node-tls-'));
  try {
    const servers = authority(dir, 'server-ca');
    const clients = authority(dir, 'client-ca');
    const srvCert = servers.issue('server', 'localhost', true);
    const alice = clients.issue('alice', 'alice', false);
    const srv = await startFake(['--tls-cert', srvCert.cert, '--tls-key', srvCert.key,
                                 '--tls-client-ca', clients.ca]);
    try {
      const c = connect(`https://${srv.address}`,
                        {tlsCa: servers.ca, tlsCert: alice.cert, tlsKey: alice.key});
      const hc = await unary(c.health, 'Check', {});
      assert.strictEqual(hc.status, 'SERVING');
      const res = await unary(c.executor, 'Execute', {
        files: [{path: 'main.py', content: Buffer.from('')}],
        metadata: {script_args: ['print:node over mtls\n']},
      });
      assert.strictEqual(res.stdout.toString(), 'node over mtls\n');
      c.close();
      const anonymous = connect(`https://${srv.address}`, {tlsCa: servers.ca});
      await assert.rejects(unary(anonymous.health, 'Check', {}, 10000),
                           (err) => err.code === grpc.status.UNAVAILABLE);
      anonymous.close();
    } finally {
      await srv.stop();
    }
  } finally {
    fs.rmSync(dir, {recursive: true, force: true});
  }
});

test('the example sends its token', {skip: !fs.existsSync(FAKE) && `no ${FAKE}`}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pyexec-node-token-'));
  const tokens = path.join(dir, 'tokens');
  const sha = (t) => crypto.createHash('sha256').update(t).digest('hex');
  fs.writeFileSync(tokens, `alice ${sha('alice-token')}\nbob ${sha('bob-token')}\n`);
  const srv = await startFake(['--auth-tokens', tokens]);
  try {
    const alice = connect(srv.address, {token: 'alice-token'});
    const bob = connect(srv.address, {token: 'bob-token'});
    const anonymous = connect(srv.address);
    const sub = await unary(alice.executor, 'Execute', {
      files: [{path: 'main.py', content: Buffer.from('')}],
      metadata: {script_args: ['print:node\n']},
      async: true,
    });
    const got = await unary(alice.executor, 'GetExecution', {execution_id: sub.execution_id});
    assert.strictEqual(got.execution_id, sub.execution_id);
    await assert.rejects(unary(bob.executor, 'GetExecution', {execution_id: sub.execution_id}),
                         (err) => err.code === grpc.status.NOT_FOUND);
    await assert.rejects(unary(anonymous.executor, 'ListExecutions', {}),
                         (err) => err.code === grpc.status.UNAUTHENTICATED);
    assert.strictEqual((await unary(anonymous.health, 'Check', {})).status, 'SERVING');
    for (const c of [alice, bob, anonymous]) c.close();
  } finally {
    await srv.stop();
    fs.rmSync(dir, {recursive: true, force: true});
  }
});
