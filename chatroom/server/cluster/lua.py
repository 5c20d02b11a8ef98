"""The Lua scripts Redis runs for the cluster: each one decides and writes atomically, so servers never race.

Every script starts with `PRELUDE`: the common arguments, the clock, the refusal of a call its caller has given
up on, and the helpers that number and append events. docs/design.md ("One room on several servers") shows
the keys; every key shares the room's hash tag (`chatroom:{room}`), KEYS[1].
"""

from __future__ import annotations

# Ids after a lost counter start this far above the highest id known (see next_id): room for the events that
# servers had read, and this one had not, when Redis lost them (at 2,000 messages/s, 50 s of lag).
MARGIN = 100_000

# ARGV[1..6] of every script: FLOOR (the highest id the caller knows), DEADLINE (Redis ms after which the caller
# has given up; 0: none), ORIGIN (the calling server), TRIM (the stream's length), GRACE (ms a lost member is
# reconnecting), REF (the caller's reference, carried by the event it appends). The script's own from ARGV[7].
PRELUDE = """
local P = KEYS[1]
local FLOOR, DEADLINE, ORIGIN, TRIM, GRACE, REF =
  tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local MARGIN = MARGIN_VALUE
local NAMES, LOOKS, AWAY, SERVERS, LOG = P..':names', P..':looks', P..':away', P..':servers', P..':log'
local CLOCK = redis.call('TIME')
local NOW = tonumber(CLOCK[1]) * 1000 + math.floor(tonumber(CLOCK[2]) / 1000)
if DEADLINE > 0 and NOW > DEADLINE then
  return {'late'}
end

local function id_of(n, sub)
  return string.format('%d-%d', n, sub or 0)
end

local function stamp()
  return NOW / 1000
end

-- The next event id. A lost counter (Redis restarted without its data, or the key evicted) starts again above
-- the highest id known here (the caller's, the stream's, the last epoch's) plus MARGIN, and an entry of a new
-- epoch at that id tells every reader that the ids it skipped hold no events it can have.
local function next_id()
  local id = redis.call('INCR', P..':seq')
  if id > 1 then
    return id
  end
  local base = FLOOR
  local last = redis.call('XREVRANGE', LOG, '+', '-', 'COUNT', 1)[1]
  if last then
    base = math.max(base, tonumber(string.match(last[1], '^(%d+)')))
  end
  local epoch = redis.call('GET', P..':epoch')
  if epoch then
    base = math.max(base, tonumber(string.match(epoch, ' (%d+)$')))
  end
  local name = CLOCK[1] .. string.format('%06d', tonumber(CLOCK[2]))
  redis.call('SET', P..':epoch', name .. ' ' .. string.format('%d', base + MARGIN))
  redis.call('XADD', LOG, 'MAXLEN', '~', TRIM, id_of(base + MARGIN), 'epoch', name, 'after', string.format('%d', base))
  redis.call('SET', P..':seq', string.format('%d', base + MARGIN + 1))
  return base + MARGIN + 1
end

-- Number an event (a table built here, or JSON from the caller) and append it, with more fields if given.
local function emit(event, ...)
  local json = event
  if type(event) == 'table' then
    json = cjson.encode(event)
  end
  local id = next_id()
  redis.call('XADD', LOG, 'MAXLEN', '~', TRIM, id_of(id), 'e', json, 'o', ORIGIN, 'r', REF, ...)
  return id
end

local function member(key)
  local raw = redis.call('HGET', NAMES, key)
  if raw then
    return cjson.decode(raw)
  end
  return nil
end

local function store(key, m)
  redis.call('HSET', NAMES, key, cjson.encode(m))
end

-- The seat `claim` of the caller's server holds, here (not reconnecting), or nil.
local function owned(key, claim)
  local m = member(key)
  if m and m.c == claim and m.st == 'here' then
    return m
  end
  return nil
end

-- The name is free again.
local function forget(key, m)
  redis.call('HDEL', NAMES, key)
  if redis.call('HGET', LOOKS, m.k) == key then
    redis.call('HDEL', LOOKS, m.k)
  end
  redis.call('ZREM', AWAY, key)
  redis.call('SREM', P..':on:'..m.s, key)
end

-- A member whose grace has ended leaves (lost); the private messages held for it go back to their senders as
-- entries right after the leave (ids N-1, N-2...: in order with it, without an event id of their own).
local function lost(key, m)
  forget(key, m)
  local id = emit({type='leave', name=m.n, reason='lost', ts=stamp()})
  local held = P..':held:'..key
  for i, private in ipairs(redis.call('LRANGE', held, 0, -1)) do
    redis.call('XADD', LOG, 'MAXLEN', '~', TRIM, id_of(id, i), 'b', private, 's', cjson.decode(private).seq)
  end
  redis.call('DEL', held)
  return id
end

-- An entry whose grace is over is settled now (true), whoever meets it first: the sweeper or a claim.
local function settle(key, m)
  if m.st == 'away' and m.u <= NOW then
    lost(key, m)
    return true
  end
  return false
end

-- The entry of a name still held (one whose grace is over is settled first), or nil.
local function held_by(key)
  local m = member(key)
  if m and not settle(key, m) then
    return m
  end
  return nil
end

-- The entry of another name, still held, that looks like the skeleton `skel`, or nil.
local function lookalike(skel, key)
  local other = redis.call('HGET', LOOKS, skel)
  if other and other ~= key then
    return held_by(other)
  end
  return nil
end

-- A member here leaves: reconnecting for the grace if it may come back (a resume token, `keep`), else gone.
local function depart(key, m, reason, keep)
  redis.call('SREM', P..':on:'..m.s, key)
  if keep and m.t ~= '' and GRACE > 0 then
    m.st, m.u = 'away', NOW + GRACE
    store(key, m)
    redis.call('ZADD', AWAY, m.u, key)
    return 'away', emit({type='reconnecting', name=m.n, ts=stamp()})
  end
  forget(key, m)
  return 'left', emit({type='leave', name=m.n, reason=reason, ts=stamp()})
end
""".replace("MARGIN_VALUE", str(MARGIN))

# ARGV: key, skeleton, name, claim, token hash ('' none), presented token hash ('' none), most members.
CLAIM = """
local key, skel, name, claim, token, presented, most = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12],
  tonumber(ARGV[13])
if redis.call('EXISTS', P..':alive:'..ORIGIN) == 0 or redis.call('SISMEMBER', SERVERS, ORIGIN) == 0 then
  return {'unregistered'}
end
local m = member(key)
if m and presented ~= '' and m.t == presented then
  local held = P..':held:'..key
  redis.call('SREM', P..':on:'..m.s, key)
  redis.call('ZREM', AWAY, key)
  m.s, m.c, m.st, m.u, m.t = ORIGIN, claim, 'here', 0, token
  store(key, m)
  redis.call('SADD', P..':on:'..ORIGIN, key)
  local kept = redis.call('LRANGE', held, 0, -1)
  local texts = {}
  for i, private in ipairs(kept) do
    texts[i] = redis.call('GET', P..':pm:'..string.format('%d', cjson.decode(private).seq)) or ''
  end
  redis.call('DEL', held)
  return {'resumed', emit({type='join', name=m.n, back=true, ts=stamp()}), m.n, kept, texts}
end
if m and not settle(key, m) then
  if m.st == 'away' then
    return {'name_reserved', m.n, m.u - NOW}
  end
  return {'name_taken', m.n}
end
local look = lookalike(skel, key)
if look then
  return {'name_lookalike', look.n}
end
if redis.call('HLEN', NAMES) >= most then
  return {'room_full'}
end
store(key, {n=name, k=skel, s=ORIGIN, c=claim, st='here', u=0, t=token})
redis.call('HSET', LOOKS, skel, key)
redis.call('SADD', P..':on:'..ORIGIN, key)
return {'joined', emit({type='join', name=name, back=false, ts=stamp()}), name}
"""

# ARGV: key, claim, new key, new skeleton, new name.
RENAME = """
local key, claim, new_key, new_skel, new_name = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local m = owned(key, claim)
if not m then
  return {'not_member'}
end
local taken = new_key ~= key and held_by(new_key)
if taken then
  return {'name_taken', taken.n}
end
local look = lookalike(new_skel, key)
if look then
  return {'name_lookalike', look.n}
end
forget(key, m)
local old = m.n
m.n, m.k = new_name, new_skel
store(new_key, m)
redis.call('HSET', LOOKS, new_skel, new_key)
redis.call('SADD', P..':on:'..ORIGIN, new_key)
return {'renamed', emit({type='rename', old=old, new=new_name, ts=stamp()})}
"""

# ARGV: key, claim, reason, keep ('1': reconnecting if it can resume).
LEAVE = """
local key, claim, reason, keep = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local m = owned(key, claim)
if not m then
  return {'gone'}
end
local how, id = depart(key, m, reason, keep == '1')
return {how, id}
"""

# ARGV: key, claim, the event as JSON.
PUBLISH = """
local key, claim, json = ARGV[7], ARGV[8], ARGV[9]
if not owned(key, claim) then
  return {'not_member'}
end
return {'ok', emit(json)}
"""

# ARGV: key, claim, recipient's key, the event as JSON without its recipient and text, the text, ms its text is
# kept, most messages held for a reconnecting recipient. The text is only ever under its own key, for TTL ms
# (longer than any hold): the stream and the held lists keep the message without it, and readers fetch it.
WHISPER = """
local key, claim, to_key, json, text, ttl, most = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], tonumber(ARGV[12]),
  tonumber(ARGV[13])
if not owned(key, claim) then
  return {'not_member'}
end
local t = member(to_key)
if not t or settle(to_key, t) then
  return {'unknown_user'}
end
local held = P..':held:'..to_key
local away = t.st == 'away'
if away and redis.call('LLEN', held) >= most then
  return {'not_delivered', t.n}
end
local body = string.sub(json, 1, -2) .. ',"to":' .. cjson.encode(t.n) .. '}'
local id = emit(body, 'p', away and 'held' or 'sent')
redis.call('SET', P..':pm:'..string.format('%d', id), text, 'PX', ttl)
if away then
  redis.call('RPUSH', held, string.sub(body, 1, -2) .. ',"seq":' .. string.format('%d', id) .. '}')
  redis.call('PEXPIREAT', held, t.u + ttl)
end
return {away and 'held' or 'sent', id, t.n}
"""

# ARGV: register ('1': join the cluster's servers; '0': only while still one of them), ms the heartbeat lasts.
HEARTBEAT = """
if ARGV[7] == '0' and redis.call('SISMEMBER', SERVERS, ORIGIN) == 0 then
  return {0, NOW}
end
redis.call('SADD', SERVERS, ORIGIN)
redis.call('SET', P..':alive:'..ORIGIN, '1', 'PX', ARGV[8])
return {1, NOW}
"""

# ARGV: '' to sweep every server whose heartbeat has expired, or the caller's id to retire itself; the reason
# its members leave with (if they cannot come back), most members to settle. Whoever sweeps, each member is
# moved once: the script is atomic, and what it moved is no longer there.
SWEEP = """
local retire, reason, most = ARGV[7], ARGV[8], tonumber(ARGV[9])
local changed = 0
for _, server in ipairs(redis.call('SMEMBERS', SERVERS)) do
  if server == retire or (retire == '' and redis.call('EXISTS', P..':alive:'..server) == 0) then
    for _, key in ipairs(redis.call('SMEMBERS', P..':on:'..server)) do
      local m = member(key)
      if m and m.s == server and m.st == 'here' then
        depart(key, m, reason, true)
        changed = changed + 1
      end
    end
    redis.call('DEL', P..':on:'..server, P..':alive:'..server)
    redis.call('SREM', SERVERS, server)
  end
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', AWAY, '-inf', NOW, 'LIMIT', 0, most)) do
  local m = member(key)
  if m then
    lost(key, m)
  else
    redis.call('ZREM', AWAY, key)
  end
  changed = changed + 1
end
return changed
"""

# The room as it is at one id: the counter, the epoch, every member's entry.
SNAPSHOT = """
return {redis.call('GET', P..':seq') or '0', redis.call('GET', P..':epoch') or '', redis.call('HVALS', NAMES)}
"""

SCRIPTS = {"claim": CLAIM, "rename": RENAME, "leave": LEAVE, "publish": PUBLISH, "whisper": WHISPER,
           "heartbeat": HEARTBEAT, "sweep": SWEEP, "snapshot": SNAPSHOT}
