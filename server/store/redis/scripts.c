/*
 * The Redis store's Lua scripts.
 *
 * Keys (P = "px:<namespace>:"):
 *   P exe:<id>     hash: st (status), rs (reason), ran, ex (exit code), tr
 *                  (output truncated), mem, cpu, sa (started at), fa
 *                  (finished at), ec (error class), er (error), len (output
 *                  bytes), own (owner node, once claimed), fen (the owner's
 *                  fencing token), kil (kill cause asked for), qid (queue
 *                  entry while unclaimed), rid (request_id), dig (request
 *                  digest), ca (created at), fby (token of the finisher),
 *                  tn (the tenant; "" or absent: none),
 *                  Eval's report: prh (has a result), prs (result), pet,
 *                  pel, pem (error type, line, message)
 *   P req:<id>     string: the packed job, until the execution ends
 *   P out:<id>     stream: output chunks, entry id <offset+1>-0 with fields
 *                  s (stream) and d (bytes); the last entry, e (status), marks
 *                  the end
 *   P queue        stream + group "workers": one entry (field id) per
 *                  unclaimed job; XLEN is the number of queued jobs
 *   P epoch        counter: fencing tokens
 *   P node:<name>  string with PX: the node's lease, value = its token
 *   P nodes        set: nodes that hold or held a lease (for the sweep)
 *   P run:<name>   set: claimed, non-terminal executions of a node
 *   P rid:<rid>    string: request_id -> execution id
 *   P ctl:<name>   channel: "<id> <kill cause>" for executions whose kill a node
 *                  must carry out
 *   P fw:<name>    stream (one entry): wakes the node's output follower when
 *                  it must follow one more execution
 *   P tq:<tenant>  hash: the tenant's quota counts, c (executions counted
 *                  and not terminal) and q (of those, PENDING); deleted when
 *                  c is back to 0. A record counted has qc = 1.
 *   P tb:<tenant>  hash: the tenant's per-minute bucket, tok (tokens) and at
 *                  (unix ms of the last refill); expires when it would be
 *                  full again
 *
 * Fencing: a node's token is the epoch it got with its lease. A claim writes
 * own/fen; every later write by the owner passes the token and succeeds only
 * while fen matches and the owner's lease still holds that token. A node
 * that lost its lease (paused, partitioned) therefore cannot write anything
 * once its lease expired, and the sweep turns its executions FAILED/LOST.
 * A job is rerun elsewhere only if it was never claimed (at most once).
 *
 * Terminal records, their output and request_id expire `retention` ms after
 * the terminal transition.
 */
#include "server/store/redis/scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/model/job.h"

/* Shared by every script. %d placeholders are filled from the C enums. */
static const char PRELUDE[] =
    "local P = ARGV[1]\n"
    "local PENDING, RUNNING, COMPLETED, FAILED, KILLED = %d, %d, %d, %d, %d\n"
    "local R_LOST, E_INTERNAL = %d, %d\n"
    "local function terminal(st) return st == COMPLETED or st == FAILED or st == KILLED end\n"
    /* A record counted by its tenant's quotas (qc) leaves the queued count
     * (`queued`: it was PENDING) and, `ended`, the concurrent one. */
    "local function quota_leave(tn, queued, ended)\n"
    "  local tq = P .. 'tq:' .. (tn or '')\n"
    "  if queued then redis.call('HINCRBY', tq, 'q', -1) end\n"
    "  if ended and redis.call('HINCRBY', tq, 'c', -1) <= 0 then redis.call('DEL', tq) end\n"
    "end\n"
    /* The one terminal transition of a non-terminal record; `fields` are
     * HSET pairs with at least st. Every end goes through here (finish,
     * kill while queued, the sweep, a lease taken again or given up), so a
     * tenant's quota counts are released on each. */
    "local function finish(id, k, fields, ttl)\n"
    "  local h = redis.call('HMGET', k, 'own', 'qid', 'rid', 'len', 'st', 'qc', 'tn')\n"
    "  local own, qid, rid, len = h[1], h[2], h[3], tonumber(h[4] or '0')\n"
    "  if h[6] == '1' then quota_leave(h[7], tonumber(h[5]) == PENDING, true) end\n"
    "  redis.call('HSET', k, unpack(fields))\n"
    "  local st = redis.call('HGET', k, 'st')\n"
    "  local out = P .. 'out:' .. id\n"
    "  redis.call('XADD', out, (len + 1) .. '-0', 'e', st)\n"
    "  redis.call('PEXPIRE', k, ttl)\n"
    "  redis.call('PEXPIRE', out, ttl)\n"
    "  if rid and rid ~= '' then redis.call('PEXPIRE', P .. 'rid:' .. rid, ttl) end\n"
    "  if own then redis.call('SREM', P .. 'run:' .. own, id) end\n"
    "  if qid then\n"
    "    redis.call('XACK', P .. 'queue', 'workers', qid)\n"
    "    redis.call('XDEL', P .. 'queue', qid)\n"
    "    redis.call('HDEL', k, 'qid')\n"
    "  end\n"
    "  redis.call('DEL', P .. 'req:' .. id)\n"
    "end\n"
    /* 1 if the caller with token `fence` may write k ("0": nobody claimed
     * it), -1 fenced, -2 no such record, -3 terminal. */
    "local function owned(k, fence)\n"
    "  local h = redis.call('HMGET', k, 'st', 'own', 'fen')\n"
    "  local st = tonumber(h[1])\n"
    "  if not st then return -2 end\n"
    "  if terminal(st) then return -3 end\n"
    "  if (h[3] or '0') ~= fence then return -1 end\n"
    "  if h[2] and redis.call('GET', P .. 'node:' .. h[2]) ~= fence then return -1 end\n"
    "  return 1, st\n"
    "end\n"
    /* Ends the executions `node` owned as FAILED/LOST and puts the jobs it
     * read from the queue but never claimed back. Returns how many it ended. */
    "local function reap(node, now, ttl, why)\n"
    "  local n = 0\n"
    "  for _, id in ipairs(redis.call('SMEMBERS', P .. 'run:' .. node)) do\n"
    "    local k = P .. 'exe:' .. id\n"
    "    local st = tonumber(redis.call('HGET', k, 'st') or '0')\n"
    "    if st == PENDING or st == RUNNING then\n"
    "      finish(id, k, {'st', FAILED, 'rs', R_LOST, 'ran', 0, 'fa', now, 'ec', E_INTERNAL,\n"
    "                     'er', why}, ttl)\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', P .. 'run:' .. node)\n"
    "  local q = P .. 'queue'\n"
    "  while true do\n"
    "    local pend = redis.call('XPENDING', q, 'workers', '-', '+', 100, node)\n"
    "    if #pend == 0 then break end\n"
    "    for _, p in ipairs(pend) do\n"
    "      local qid = p[1]\n"
    "      local e = redis.call('XRANGE', q, qid, qid)\n"
    "      redis.call('XACK', q, 'workers', qid)\n"
    "      redis.call('XDEL', q, qid)\n"
    "      if e[1] then\n"
    "        local id = e[1][2][2]\n"
    "        local k = P .. 'exe:' .. id\n"
    "        local h = redis.call('HMGET', k, 'st', 'own', 'qid')\n"
    "        if tonumber(h[1]) == PENDING and not h[2] and h[3] == qid then\n"
    "          redis.call('HSET', k, 'qid', redis.call('XADD', q, '*', 'id', id))\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  redis.call('XGROUP', 'DELCONSUMER', q, 'workers', node)\n"
    "  return n\n"
    "end\n";

typedef struct script {
    const char *name;
    const char *body;
} script;

/* Each script's Lua source is laid out as Lua, not as C. */
/* clang-format off */
static const script SCRIPTS[PX_RSCRIPT_COUNT] = {
    /* ARGV: P, id, request_id, digest, packed job, max queued, now, tenant,
     * the oldest list score kept, then the tenant's quotas (0: none):
     * concurrent, queued, per minute. The record enters its tenant's list
     * (`list:<tenant>`, a sorted set scored created-at ms * 1000 + a counter
     * mod 1000), whose entries older than the oldest score kept are trimmed.
     * With a quota it is counted in tq:<tenant> (and takes a token from
     * tb:<tenant>, a bucket of `per minute` tokens refilled at that rate).
     * Safe to repeat with the same id.
     * -> {0, id} created; {1, existing id, its digest} request_id known;
     *    {2, queued} the queue is full; {3, quota, n} a tenant's quota is
     *    reached: 1 concurrent (n counted), 2 queued (n PENDING), 3 per
     *    minute (n: ms until the next token). */
    [PX_RSCRIPT_CREATE] = {"create",
                           "local id, rid = ARGV[2], ARGV[3]\n"
                           "if redis.call('EXISTS', P .. 'exe:' .. id) == 1 then\n"
                           "  return {0, id}\n"
                           "end\n"
                           "if rid ~= '' then\n"
                           "  local old = redis.call('GET', P .. 'rid:' .. rid)\n"
                           "  if old then\n"
                           "    local d = redis.call('HGET', P .. 'exe:' .. old, 'dig')\n"
                           "    if d then\n"
                           "      -- rewritten as it is, so that a WAIT after this script\n"
                           "      -- covers the record (it may not be on a replica yet)\n"
                           "      redis.call('HSET', P .. 'exe:' .. old, 'dig', d)\n"
                           "      return {1, old, d}\n"
                           "    end\n"
                           "  end\n"
                           "end\n"
                           "local q = P .. 'queue'\n"
                           "local n = redis.call('XLEN', q)\n"
                           "if n >= tonumber(ARGV[6]) then return {2, n} end\n"
                           "local tn, now = ARGV[8], tonumber(ARGV[7])\n"
                           "local mc, mq, mm = tonumber(ARGV[10]), tonumber(ARGV[11]),\n"
                           "                   tonumber(ARGV[12])\n"
                           "local counted = mc > 0 or mq > 0 or mm > 0\n"
                           "if counted then\n"
                           "  local tq = P .. 'tq:' .. tn\n"
                           "  local h = redis.call('HMGET', tq, 'c', 'q')\n"
                           "  local c, w = tonumber(h[1] or '0'), tonumber(h[2] or '0')\n"
                           "  if mc > 0 and c >= mc then return {3, 1, c} end\n"
                           "  if mq > 0 and w >= mq then return {3, 2, w} end\n"
                           "  if mm > 0 then\n"
                           "    local tb = P .. 'tb:' .. tn\n"
                           "    local b = redis.call('HMGET', tb, 'tok', 'at')\n"
                           "    local tok, at = tonumber(b[1] or mm), tonumber(b[2] or now)\n"
                           "    if now > at then\n"
                           "      tok = math.min(mm, tok + (now - at) * mm / 60000)\n"
                           "      at = now\n"
                           "    end\n"
                           "    if tok < 1 then\n"
                           "      return {3, 3, math.ceil((1 - tok) * 60000 / mm)}\n"
                           "    end\n"
                           "    tok = tok - 1\n"
                           "    redis.call('HSET', tb, 'tok', tostring(tok), 'at', at)\n"
                           "    redis.call('PEXPIRE', tb, math.ceil((mm - tok) * 60000 / mm) + 1)\n"
                           "  end\n"
                           "  redis.call('HINCRBY', tq, 'c', 1)\n"
                           "  redis.call('HINCRBY', tq, 'q', 1)\n"
                           "end\n"
                           "local qid = redis.call('XADD', q, '*', 'id', id)\n"
                           "redis.call('HSET', P .. 'exe:' .. id, 'st', PENDING, 'len', 0,\n"
                           "           'qid', qid, 'rid', rid, 'dig', ARGV[4], 'ca', ARGV[7],\n"
                           "           'tn', tn, 'qc', counted and '1' or '0')\n"
                           "redis.call('SET', P .. 'req:' .. id, ARGV[5])\n"
                           "if rid ~= '' then redis.call('SET', P .. 'rid:' .. rid, id) end\n"
                           "local lk = P .. 'list:' .. ARGV[8]\n"
                           "local sc = tonumber(ARGV[7]) * 1000 +\n"
                           "           redis.call('INCR', P .. 'seq') % 1000\n"
                           "redis.call('ZADD', lk, sc, id)\n"
                           "redis.call('ZREMRANGEBYSCORE', lk, '-inf', '(' .. ARGV[9])\n"
                           "return {0, id}\n"},

    /* ARGV: P, id, queue entry id, node, token, resume ("1": this claim
     * may already have happened, its reply was lost).
     * -> {1, packed job} claimed; {0} not claimable (ended, gone, or a stale
     *    entry): acknowledged; {-1} the node's lease does not hold the token. */
    [PX_RSCRIPT_CLAIM] = {"claim",
                          "local id, qid, node, token = ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
                          "if redis.call('GET', P .. 'node:' .. node) ~= token then\n"
                          "  return {-1}\n"
                          "end\n"
                          "local k = P .. 'exe:' .. id\n"
                          "local h = redis.call('HMGET', k, 'st', 'own', 'qid', 'fen')\n"
                          "if ARGV[6] == '1' and tonumber(h[1]) == PENDING and h[2] == node\n"
                          "   and h[4] == token then\n"
                          "  redis.call('HSET', k, 'fen', token) -- for a WAIT: see create\n"
                          "  return {1, redis.call('GET', P .. 'req:' .. id) or ''}\n"
                          "end\n"
                          "local q = P .. 'queue'\n"
                          "redis.call('XACK', q, 'workers', qid)\n"
                          "redis.call('XDEL', q, qid)\n"
                          "if tonumber(h[1]) ~= PENDING or h[2] or h[3] ~= qid then\n"
                          "  return {0}\n"
                          "end\n"
                          "redis.call('HSET', k, 'own', node, 'fen', token)\n"
                          "redis.call('HDEL', k, 'qid')\n"
                          "redis.call('SADD', P .. 'run:' .. node, id)\n"
                          "return {1, redis.call('GET', P .. 'req:' .. id) or ''}\n"},

    /* ARGV: P, id, token, started at.
     * -> 1 now RUNNING; 0 it was not PENDING; else owned()'s code. */
    [PX_RSCRIPT_SET_RUNNING] = {"set_running",
                                "local k = P .. 'exe:' .. ARGV[2]\n"
                                "local ok, st = owned(k, ARGV[3])\n"
                                "if ok ~= 1 then return ok end\n"
                                "if st ~= PENDING then return 0 end\n"
                                "redis.call('HSET', k, 'st', RUNNING, 'sa', ARGV[4])\n"
                                "local h = redis.call('HMGET', k, 'qc', 'tn')\n"
                                "if h[1] == '1' then quota_leave(h[2], true, false) end\n"
                                "return 1\n"},

    /* ARGV: P, id, token, offset, stream, bytes.
     * -> the new output length (a repeat of an append that already happened
     *    is accepted without effect); else owned()'s code; an error if
     *    `offset` leaves a gap or overlaps differently. */
    [PX_RSCRIPT_APPEND] = {"append",
                           "local id = ARGV[2]\n"
                           "local k = P .. 'exe:' .. id\n"
                           "local ok = owned(k, ARGV[3])\n"
                           "if ok ~= 1 then return ok end\n"
                           "local len = tonumber(redis.call('HGET', k, 'len'))\n"
                           "local off, d = tonumber(ARGV[4]), ARGV[6]\n"
                           "if off ~= len then\n"
                           "  if off + #d <= len then return len end\n"
                           "  return redis.error_reply('append at offset ' .. off ..\n"
                           "    ' but the log holds ' .. len .. ' bytes')\n"
                           "end\n"
                           "redis.call('XADD', P .. 'out:' .. id, (off + 1) .. '-0',\n"
                           "           's', ARGV[5], 'd', d)\n"
                           "return redis.call('HINCRBY', k, 'len', #d)\n"},

    /* ARGV: P, id, token ("0": the job was never claimed), retention ms,
     * then st rs ran ex tr mem cpu sa fa ec er prh prs pet pel pem.
     * -> 1 this call (or an earlier one by the same owner, whose reply was
     *    lost) made the terminal transition; else owned()'s code. */
    [PX_RSCRIPT_FINISH] = {"finish",
                           "local id = ARGV[2]\n"
                           "local k = P .. 'exe:' .. id\n"
                           "local ok = owned(k, ARGV[3])\n"
                           "if ok == -3 and ARGV[3] ~= '0' and\n"
                           "   redis.call('HGET', k, 'fby') == ARGV[3] then\n"
                           "  return 1\n"
                           "end\n"
                           "if ok ~= 1 then return ok end\n"
                           "finish(id, k, {'fby', ARGV[3], 'st', ARGV[5], 'rs', ARGV[6],\n"
                           "  'ran', ARGV[7], 'ex', ARGV[8], 'tr', ARGV[9], 'mem', ARGV[10],\n"
                           "  'cpu', ARGV[11],"
                           "  'sa', ARGV[12], 'fa', ARGV[13], 'ec', ARGV[14], 'er', ARGV[15],\n"
                           "  'prh', ARGV[16], 'prs', ARGV[17], 'pet', ARGV[18], 'pel', ARGV[19],\n"
                           "  'pem', ARGV[20]},\n"
                           "  tonumber(ARGV[4]))\n"
                           "return 1\n"},

    /* ARGV: P, id, kill cause, retention ms, now, status, reason for a job
     * still queued.
     * -> {1} it was queued and is now KILLED; {2, owner} the owner was told
     *    on its ctl channel ("<id> <cause>") (the kil field is the durable request);
     *    {0} already terminal; {-2} no such record. */
    [PX_RSCRIPT_KILL] = {"kill",
                         "local id = ARGV[2]\n"
                         "local k = P .. 'exe:' .. id\n"
                         "local h = redis.call('HMGET', k, 'st', 'own', 'kil')\n"
                         "local st = tonumber(h[1])\n"
                         "if not st then return {-2} end\n"
                         "if terminal(st) then return {0} end\n"
                         "if not h[3] then redis.call('HSET', k, 'kil', ARGV[3]) end\n"
                         "if not h[2] then\n"
                         "  finish(id, k, {'st', ARGV[6], 'rs', ARGV[7], 'ran', 0,\n"
                         "                 'fa', ARGV[5]}, tonumber(ARGV[4]))\n"
                         "  return {1}\n"
                         "end\n"
                         "redis.call('PUBLISH', P .. 'ctl:' .. h[2],\n"
                         "           id .. ' ' .. (h[3] or ARGV[3]))\n"
                         "return {2, h[2]}\n"},

    /* ARGV: P, id, offset, max bytes.
     * -> {-2} no such record; {0, st, len} nothing at offset;
     *    {1, st, len, stream, bytes}: up to max bytes from offset on, from
     *    the chunk holding offset and the chunks of the same stream right
     *    after it (as the in-memory log merges them). */
    [PX_RSCRIPT_READ] = {"read",
                         "local id = ARGV[2]\n"
                         "local h = redis.call('HMGET', P .. 'exe:' .. id, 'st', 'len')\n"
                         "if not h[1] then return {-2} end\n"
                         "local st, len = tonumber(h[1]), tonumber(h[2])\n"
                         "local off, max = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
                         "if off >= len then return {0, st, len} end\n"
                         "local out = P .. 'out:' .. id\n"
                         "local e = redis.call('XREVRANGE', out, (off + 1) .. '-0', '-',\n"
                         "                     'COUNT', 1)[1]\n"
                         "local start = tonumber(string.match(e[1], '^(%d+)')) - 1\n"
                         "local f = e[2]\n"
                         "local from = off - start + 1\n"
                         "local parts = {string.sub(f[4], from, from + max - 1)}\n"
                         "local got = #parts[1]\n"
                         "if got < max then\n"
                         "  for _, x in ipairs(redis.call('XRANGE', out, '(' .. e[1], '+',\n"
                         "                                'COUNT', 64)) do\n"
                         "    local g = x[2]\n"
                         "    if g[1] ~= 's' or g[2] ~= f[2] then break end\n"
                         "    local take = string.sub(g[4], 1, max - got)\n"
                         "    parts[#parts + 1] = take\n"
                         "    got = got + #take\n"
                         "    if got >= max then break end\n"
                         "  end\n"
                         "end\n"
                         "return {1, st, len, f[2], table.concat(parts)}\n"},

    /* ARGV: P, id, with output ("1"/"0").
     * -> {} no such record; {HGETALL pairs, stdout, stderr} (both "" without
     *    output). */
    [PX_RSCRIPT_GET] = {"get",
                        "local id = ARGV[2]\n"
                        "local h = redis.call('HGETALL', P .. 'exe:' .. id)\n"
                        "if #h == 0 then return {} end\n"
                        "local o, e = {}, {}\n"
                        "if ARGV[3] == '1' then\n"
                        "  local out = P .. 'out:' .. id\n"
                        "  for _, x in ipairs(redis.call('XRANGE', out, '-', '+')) do\n"
                        "    local f = x[2]\n"
                        "    if f[1] == 's' then\n"
                        "      if f[2] == '1' then o[#o + 1] = f[4] else e[#e + 1] = f[4] end\n"
                        "    end\n"
                        "  end\n"
                        "end\n"
                        "return {h, table.concat(o), table.concat(e)}\n"},

    /* ARGV: P, node, lease ms, now, retention ms.
     * -> {token} the node holds the lease (what its previous life left is
     *    reaped first); {-1, ms left} another holder's lease is live. */
    [PX_RSCRIPT_LEASE_ACQUIRE] = {"lease_acquire",
                                  "local node = ARGV[2]\n"
                                  "local left = redis.call('PTTL', P .. 'node:' .. node)\n"
                                  "if left ~= -2 then return {-1, left} end\n"
                                  "reap(node, ARGV[4], tonumber(ARGV[5]),\n"
                                  "     \"execution lost: node '\" .. node .. \"' restarted\")\n"
                                  "local token = redis.call('INCR', P .. 'epoch')\n"
                                  "redis.call('SET', P .. 'node:' .. node, token,\n"
                                  "           'PX', tonumber(ARGV[3]))\n"
                                  "redis.call('SADD', P .. 'nodes', node)\n"
                                  "return {token}\n"},

    /* ARGV: P, node, token, lease ms. -> 1 renewed; 0 the lease was lost. */
    [PX_RSCRIPT_LEASE_RENEW] = {"lease_renew",
                                "local key = P .. 'node:' .. ARGV[2]\n"
                                "if redis.call('GET', key) ~= ARGV[3] then return 0 end\n"
                                "redis.call('PEXPIRE', key, tonumber(ARGV[4]))\n"
                                "return 1\n"},

    /* ARGV: P, node, token, now, retention ms.
     * -> the number of executions it still owned (ended FAILED/LOST), or -1
     *    if the lease was not held with this token (nothing changed). */
    [PX_RSCRIPT_LEASE_RELEASE] = {"lease_release",
                                  "local node = ARGV[2]\n"
                                  "local key = P .. 'node:' .. node\n"
                                  "if redis.call('GET', key) ~= ARGV[3] then return -1 end\n"
                                  "redis.call('DEL', key)\n"
                                  "local n = reap(node, ARGV[4], tonumber(ARGV[5]),\n"
                                  "     \"execution lost: node '\" .. node .. \"' stopped\")\n"
                                  "redis.call('SREM', P .. 'nodes', node)\n"
                                  "return n\n"},

    /* ARGV: P, now, retention ms.
     * -> the number of executions ended FAILED/LOST because their node's
     *    lease expired. */
    [PX_RSCRIPT_SWEEP] = {"sweep",
                          "local n = 0\n"
                          "for _, node in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do\n"
                          "  if redis.call('EXISTS', P .. 'node:' .. node) == 0 then\n"
                          "    n = n + reap(node, ARGV[2], tonumber(ARGV[3]),\n"
                          "      \"execution lost: node '\" .. node ..\n"
                          "      \"' stopped renewing its lease\")\n"
                          "    redis.call('SREM', P .. 'nodes', node)\n"
                          "  end\n"
                          "end\n"
                          "return n\n"},

    /* ARGV: P, id, node. Wakes the node's follower (P fw:<node>).
     * -> {the execution's output length (the follower's starting point),
     *    1 if it is terminal else 0}, or {-1} if there is no such record. */
    [PX_RSCRIPT_FOLLOW_ADD] = {"follow_add",
                               "local k = P .. 'exe:' .. ARGV[2]\n"
                               "local h = redis.call('HMGET', k, 'len', 'st')\n"
                               "redis.call('XADD', P .. 'fw:' .. ARGV[3], 'MAXLEN', 1, '*',\n"
                               "           'id', ARGV[2])\n"
                               "if not h[1] then return {-1} end\n"
                               "return {tonumber(h[1]), terminal(tonumber(h[2])) and 1 or 0}\n"},
};
/* clang-format on */

const char *px_rscript_name(px_rscript s) {
    return SCRIPTS[s].name;
}

char *px_rscript_source(px_rscript s, px_error *err) {
    char *prelude = NULL;
    if (asprintf(&prelude, PRELUDE, PX_STATUS_PENDING, PX_STATUS_RUNNING, PX_STATUS_COMPLETED,
                 PX_STATUS_FAILED, PX_STATUS_KILLED, PX_REASON_LOST, PX_E_INTERNAL) < 0) {
        px_error_set(err, PX_E_INTERNAL, "redis scripts: out of memory");
        return NULL;
    }
    char *src = NULL;
    int rc = asprintf(&src, "%s%s", prelude, SCRIPTS[s].body);
    free(prelude);
    if (rc < 0) {
        px_error_set(err, PX_E_INTERNAL, "redis scripts: out of memory");
        return NULL;
    }
    return src;
}
