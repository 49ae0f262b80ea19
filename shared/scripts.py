"""The Lua scripts that move a job through its states: each transition is one atomic round trip.

A request's state is a hash (``keys.state``) with the fields
``status`` (queued | running | done | failed | cancelled | expired | dead), ``sid`` (its work stream entry),
``stream``, ``deliveries`` (how many times a worker began it: the fencing token of the current owner),
``owner``, ``seq`` (index of its last event), ``cancel`` (set when a cancel reached a running job),
``suffix`` (the closing bytes of its events: its A2A context, ``shared.events.context_suffix``),
``result`` or ``error`` (JSON, once terminal), and ``last_error``.
Every key a script touches carries the provider's hash tag, so each script runs on one Cluster slot.

Scripts never encode an event: they are given the bytes ``shared.events`` encoded, or, where the script
chooses the index, the event's head and tail from ``shared.events.split``, which it joins around it.
"""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

TERMINAL: Final = ("done", "failed", "cancelled", "expired", "dead")

#: KEYS: state, work stream. ARGV: request id, job payload, max stream length, deadline (s),
#: state ttl (ms), the events' context suffix.
#: Returns {outcome, detail}: {"queued", entry id} | {"exists", status} | {"full", ""} |
#: {terminal status, result or error JSON} when the id already ran to an end.
ENQUEUE: Final = """
local st = redis.call('HMGET', KEYS[1], 'status', 'result', 'error')
if st[1] then
  if st[1] == 'done' then return {'done', st[2]} end
  if st[2] or st[3] then return {st[1], st[3] or ''} end
  return {'exists', st[1]}
end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {'full', ''} end
local sid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1], 'j', ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'queued', 'sid', sid, 'stream', KEYS[2], 'seq', 0,
  'deliveries', 0, 'deadline', ARGV[4], 'suffix', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {'queued', sid}
"""

#: KEYS: state, work stream, provider pause key. ARGV: consumer, now (s), max deliveries, entry id, group.
#: Returns {"run", seq, deliveries, pause ms left} | {"dead", seq, last error} | {"expired", seq} |
#: {"cancelled", seq} | {"skip", status}. "skip" means there is nothing to run (already terminal or
#: unknown); the entry has been acknowledged and deleted.
BEGIN: Final = """
local st = redis.call('HMGET', KEYS[1], 'status', 'deliveries', 'seq', 'deadline', 'last_error', 'cancel')
local status = st[1]
if (not status) or (status ~= 'queued' and status ~= 'running') then
  redis.call('XACK', KEYS[2], ARGV[5], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
  return {'skip', status or 'missing'}
end
local seq = tonumber(st[3]) or 0
if st[6] then return {'cancelled', seq} end
local deliveries = (tonumber(st[2]) or 0) + 1
if deliveries > tonumber(ARGV[3]) then return {'dead', seq, st[5] or ''} end
if tonumber(ARGV[2]) > tonumber(st[4]) then return {'expired', seq} end
redis.call('HSET', KEYS[1], 'status', 'running', 'owner', ARGV[1], 'deliveries', deliveries)
return {'run', seq, deliveries, redis.call('PTTL', KEYS[3])}
"""

#: KEYS: work stream. ARGV: group, consumer, entry ids.
#: Renews the lease of each entry the consumer still owns (XCLAIM resets its idle time), and leaves
#: alone one that another consumer reclaimed meanwhile: renewing it would take it back from its new
#: owner, and once the old owner let go nobody would renew it. Returns how many were renewed.
RENEW: Final = """
local mine = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then mine[#mine + 1] = ARGV[i] end
end
local count = #mine
if count == 0 then return 0 end
mine[count + 1] = 'JUSTID'
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(mine))
return count
"""

#: KEYS: state, events stream. ARGV: channel, event index, event payload, events ttl (ms), deliveries.
#: Appends one event to the request's event log and publishes it. Refuses (returns 0) when the caller
#: no longer owns the job (another delivery began since), so a stalled worker cannot write.
RELAY: Final = """
if redis.call('HGET', KEYS[1], 'deliveries') ~= ARGV[5] then return 0 end
redis.call('XADD', KEYS[2], '0-' .. ARGV[2], 'e', ARGV[3])
redis.call('HSET', KEYS[1], 'seq', ARGV[2])
if ARGV[2] == '1' then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
redis.call('PUBLISH', ARGV[1], ARGV[3])
return 1
"""

#: KEYS: state, events stream, work stream, dead-letter stream.
#: ARGV: channel, event index, event head, event tail, status, result-or-error JSON, deliveries (or ''
#: to skip the ownership check), entry id, group, ttl (ms), job payload (only for 'dead').
#: Writes the terminal event (at the given index, or after the log's last one if that is further on),
#: stores the result, acknowledges and deletes the work entry.
#: Returns 1, or 0 when fenced out by a newer delivery (nothing written, entry left alone).
FINISH: Final = """
local cur = redis.call('HMGET', KEYS[1], 'deliveries', 'status')
if ARGV[7] ~= '' and cur[1] and cur[1] ~= ARGV[7] then return 0 end
if cur[2] == 'done' or cur[2] == 'failed' or cur[2] == 'cancelled' or cur[2] == 'expired'
   or cur[2] == 'dead' then
  redis.call('XACK', KEYS[3], ARGV[9], ARGV[8])
  redis.call('XDEL', KEYS[3], ARGV[8])
  return 0
end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local index = tonumber(ARGV[2])
if top[1] then
  local last = tonumber(string.match(top[1][1], '%-(%d+)$'))
  if last >= index then index = last + 1 end
end
local payload = ARGV[3] .. index .. ARGV[4]
redis.call('XADD', KEYS[2], '0-' .. index, 'e', payload)
local field = 'error'
if ARGV[5] == 'done' then field = 'result' end
redis.call('HSET', KEYS[1], 'status', ARGV[5], field, ARGV[6], 'seq', index)
redis.call('PEXPIRE', KEYS[1], ARGV[10])
redis.call('PEXPIRE', KEYS[2], ARGV[10])
redis.call('XACK', KEYS[3], ARGV[9], ARGV[8])
redis.call('XDEL', KEYS[3], ARGV[8])
if ARGV[5] == 'dead' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'id', string.match(KEYS[1], ':req:(.*)$'),
    'error', ARGV[6], 'job', ARGV[11])
end
redis.call('PUBLISH', ARGV[1], payload)
return 1
"""

#: KEYS: state, events stream, work stream. ARGV: channel, control channel, request id, group,
#: error JSON (the RequestCancelledError's dict), ttl (ms), the error event's head and its tail without
#: the context (the job's ``suffix``, stored at enqueue, closes it).
#: A queued job is cancelled at once (its terminal event written and published, its entry deleted);
#: a running one is flagged and its worker told through the control channel.
#: Returns "cancelled" | "cancelling" | "unknown" | "ended:<status>" when it had already ended.
CANCEL: Final = """
local st = redis.call('HMGET', KEYS[1], 'status', 'sid', 'suffix')
local status = st[1]
if not status then return 'unknown' end
if status ~= 'queued' and status ~= 'running' then return 'ended:' .. status end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', 1)
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 'cancelling'
end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local index = 1
if top[1] then index = tonumber(string.match(top[1][1], '%-(%d+)$')) + 1 end
local payload = ARGV[7] .. index .. ARGV[8] .. (st[3] or '}')
redis.call('XADD', KEYS[2], '0-' .. index, 'e', payload)
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'error', ARGV[5], 'seq', index)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('XACK', KEYS[3], ARGV[4], st[2])
redis.call('XDEL', KEYS[3], st[2])
redis.call('PUBLISH', ARGV[1], payload)
return 'cancelled'
"""

#: KEYS: pause key, then one GCRA key per limit. ARGV: now (ms), then per limit: emission interval (ms
#: per unit), tolerance (ms), cost (units). A request is admitted when every limit's theoretical arrival
#: time is at most ``tolerance`` ahead of now (so one large token charge is admitted on an idle limit and
#: paces the ones after it); all limits are checked before any is charged.
#: Returns 0 when admitted (and charged), else the milliseconds to wait before trying again.
ACQUIRE: Final = """
local now = tonumber(ARGV[1])
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then return paused end
local wait = 0
local tats = {}
for i = 2, #KEYS do
  local base = 2 + (i - 2) * 3
  local interval, tolerance, cost = tonumber(ARGV[base]), tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local allow_at = tat - tolerance
  if allow_at > now and allow_at - now > wait then wait = allow_at - now end
  tats[i] = tat + interval * cost
end
if wait > 0 then return math.ceil(wait) end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], tats[i], 'PX', math.ceil(tats[i] - now) + 1000)
end
return 0
"""

#: KEYS: GCRA keys of token limits. ARGV: now (ms), then per key: interval (ms per token), delta tokens
#: (actual minus the estimate charged up front; may be negative).
RECONCILE: Final = """
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local interval, delta = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat then
    local new_tat = tat + interval * delta
    if new_tat > now then
      redis.call('SET', KEYS[i], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return 1
"""

#: KEYS: a batch's hash. Marks a batch that is still being fed or run as cancelled; returns 1 if this
#: call did, 0 if it was already cancelled or done.
CANCEL_BATCH: Final = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'feeding' or state == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled')
  return 1
end
return 0
"""

#: KEYS: pause key. ARGV: milliseconds. Extends, never shortens, a provider-wide pause.
PAUSE: Final = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], 1, 'PX', ms) end
return 1
"""


class LuaScript:
    """A script called by EVALSHA, loaded again whenever the server has lost it (restart, failover)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = ""

    async def __call__(self, redis: Redis, keys: list[str], args: list[Any]) -> Any:
        if not self.sha:
            self.sha = await redis.script_load(self.source)
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
        except NoScriptError:
            self.sha = await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]
