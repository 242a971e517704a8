-- KEYS: log, ids, entities, history of one partition.
-- ARGV[1]: a MessagePack array with one array per event: the entry's fields (a flat list of
--   names and values, events.to_fields), event_id (16 bytes), entity, expected_version,
--   ('' for none), op (create|revise|retract|merge|redact|dispute), into entity ('' unless
--   a merge), into
--   id, sealed (the sealed private text, '' for none: the entry then has no sealed field),
--   source (the feed), digest (of the body, see
--   services/store/rules.py), named (the incident entities a statement names, in order),
--   elsewhere (a map: named entity held by another partition -> whether it was reported,
--   read by the client before the call), the bucket of the id (services/store/keys.py),
--   the event_id as text (as ids were indexed before buckets), the buckets of the entities
--   it names (services/store/keys.py: of entity, of into entity ('' unless a merge), of each
--   named incident in order). One argument for the whole
--   batch keeps the client's command packing to one string; the history hash is read and
--   written with one command (in chunks), each id bucket the batch touches with one
--   command, each entity's state with one, and each event is one XADD.
-- ARGV[2] (optional): a MessagePack map from the batch index of a merge into an incident
--   held by another partition to that incident's state at that point ('version|status
--   [|into[|owner]]', '' for missing), read by the client before the call; the merge is
--   checked against it, and the other partition's keys are never touched here.
-- ARGV[3] (optional): '1' to check only: answer as below but write nothing.
-- ARGV[4]: the feed operators act as (they may change any feed's entity).
-- Returns {'ok', flags, pos1, pos2, ...} with flags one letter per event (a: appended,
-- d: duplicate), or the first problem with nothing written:
--   {'conflict', index, entity, current_version, 'version'|'exists'}
--   {'rejected', index, 'self'|'into', status, merged_into}
--   {'forbidden', index, owner}        a change by a feed that does not own the entity
--   {'own_dispute', index}             a dispute filed by the incident's owner
--   {'unknown', index, 'id,id'}        a statement names incidents nobody reported
--   {'reused', index, position, earlier}  the id holds another body of this feed
--     (position '' and earlier the batch index when the first use is in this batch)
--   {'taken', index}                   the id holds another feed's event
local log, ids, entities, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch = cmsgpack.unpack(ARGV[1])
local n = #batch
local foreign = {}
if ARGV[2] and ARGV[2] ~= '' then
  foreign = cmsgpack.unpack(ARGV[2])
end
local operator = ARGV[4] or ''
local CHUNK = 1000
local DIGEST = 8

-- HMGET of many fields, CHUNK at a time (unpack has a stack limit)
local function hmget(key, fields)
  local values = {}
  for first = 1, #fields, CHUNK do
    local last = math.min(first + CHUNK - 1, #fields)
    local got = redis.call('HMGET', key, unpack(fields, first, last))
    for j = 1, #got do
      values[first + j - 1] = got[j]
    end
  end
  return values
end

-- HSET of many field/value pairs (a flat list), CHUNK pairs at a time
local function hset(key, pairs)
  for first = 1, #pairs, 2 * CHUNK do
    local last = math.min(first + 2 * CHUNK - 1, #pairs)
    redis.call('HSET', key, unpack(pairs, first, last))
  end
end

-- what the hashes know already: every id, and every entity named (merge targets, the
-- incidents statements name here)
local names = {}
local named = {}
local bucket_of = {}
local function name(entity, bucket)
  if not named[entity] then
    named[entity] = true
    names[#names + 1] = entity
    bucket_of[entity] = bucket
  end
end
for i = 1, n do
  local e = batch[i]
  local buckets = e[15]
  name(e[3], buckets[1])
  if e[5] == 'merge' and foreign[i] == nil then
    name(e[6], buckets[2])
  end
  for j, incident in ipairs(e[11]) do
    if e[12][incident] == nil then
      name(incident, buckets[2 + j])
    end
  end
end
-- ids are held in buckets (ids .. ':' .. bucket, small hashes Redis keeps as listpacks),
-- each id under its 16 bytes; an id indexed before buckets is in the hash ids itself,
-- under its text
local by_bucket, buckets = {}, {}
for i = 1, n do
  local bucket = batch[i][13]
  local list = by_bucket[bucket]
  if list == nil then
    list = {}
    by_bucket[bucket] = list
    buckets[#buckets + 1] = bucket
  end
  list[#list + 1] = i
end
local known_ids = {}
for _, bucket in ipairs(buckets) do
  local list = by_bucket[bucket]
  if #list == 1 then  -- most buckets of a batch: one id
    known_ids[list[1]] = redis.call('HGET', ids .. ':' .. bucket, batch[list[1]][2])
  else
    local fields = {}
    for j, i in ipairs(list) do
      fields[j] = batch[i][2]
    end
    local got = hmget(ids .. ':' .. bucket, fields)
    for j, i in ipairs(list) do
      known_ids[i] = got[j]
    end
  end
end
if redis.call('EXISTS', ids) == 1 then
  local older, at = {}, {}
  for i = 1, n do
    if not known_ids[i] then
      older[#older + 1] = batch[i][14]
      at[#at + 1] = i
    end
  end
  if #older > 0 then
    local got = hmget(ids, older)
    for j = 1, #at do
      known_ids[at[j]] = got[j]
    end
  end
end
-- entity states are held in buckets (entities .. ':' .. bucket, small hashes Redis keeps as
-- listpacks); an entity recorded before buckets is in the hash entities itself until it
-- changes
local unbucketed = redis.call('EXISTS', entities) == 1
local stored = {}
for j, entity in ipairs(names) do
  stored[j] = redis.call('HGET', entities .. ':' .. bucket_of[entity], entity)
  if not stored[j] and unbucketed then
    stored[j] = redis.call('HGET', entities, entity)
  end
end
-- 'version|status[|into[|owner[|created]]]' -> {version, status, into, owner, created}
-- (created: the position of the entity's first event; the history hash holds the later
-- ones only, and no entry at all for an entity of one event. An entity recorded before
-- has no created part and its history holds every position.)
local function parsed(raw)
  if not raw or raw == '' then
    return {0, 'missing', '', '', ''}
  end
  local parts = {}
  for part in string.gmatch(raw .. '|', '([^|]*)|') do
    parts[#parts + 1] = part
  end
  return {tonumber(parts[1]), parts[2], parts[3] or '', parts[4] or '', parts[5] or ''}
end
local states = {}
for j = 1, #names do
  states[names[j]] = parsed(stored[j])
end
-- whether a digest held in the index and an incoming one say the same body
local function same_body(held, digest)
  if held == '' then
    return true
  end
  if #digest == DIGEST then
    return string.sub(held, 1, DIGEST) == digest
  end
  return held == digest
end
-- the feed of the event at a position of this partition's log
local function feed_at(pos)
  local entry = redis.call('XRANGE', log, pos, pos)[1]
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'source' then  -- entries of codec 1 and later
      return fields[j + 1]
    end
    if fields[j] == 'data' then  -- the JSON of an entry written before them
      return cjson.decode(fields[j + 1])['source']
    end
  end
  return ''
end

-- first pass: check everything, write nothing
local seen = {}
local dup = {}
local dirty = {}
local dirty_order = {}
for i = 1, n do
  local e = batch[i]
  local id = e[2]
  local source, digest = e[9], e[10]
  if seen[id] then
    if not same_body(batch[seen[id]][10], digest) then
      return {'reused', i - 1, '', seen[id] - 1}
    end
    dup[i] = seen[id]
  elseif known_ids[i] then
    local pos, held = string.match(known_ids[i], '^(%S+) ?(.*)$')
    if not same_body(held, digest) then
      if feed_at(pos) ~= source then
        return {'taken', i - 1}
      end
      return {'reused', i - 1, pos, -1}
    end
    dup[i] = pos
  else
    seen[id] = i
    local entity, expected, op = e[3], e[4], e[5]
    local s = states[entity]
    if expected ~= '' and tonumber(expected) ~= s[1] then
      return {'conflict', i - 1, entity, s[1], 'version'}
    end
    local change = true
    if op == 'create' then
      if s[2] ~= 'missing' then
        return {'conflict', i - 1, entity, s[1], 'exists'}
      end
      local unknown = {}
      for _, incident in ipairs(e[11]) do
        local reported = e[12][incident]
        if reported == nil then
          reported = states[incident][2] ~= 'missing'
        end
        if not reported then
          unknown[#unknown + 1] = string.sub(incident, 10)
        end
      end
      if #unknown > 0 then
        return {'unknown', i - 1, table.concat(unknown, ',')}
      end
      s[2] = 'live'
      s[4] = source
    elseif s[2] == 'missing' then
      return {'rejected', i - 1, 'self', 'missing', ''}
    elseif op == 'dispute' then
      if s[4] == source then
        return {'own_dispute', i - 1}
      end
      change = false
    elseif op == 'redact' then
      -- erasure reaches an entity whatever its status, and keeps the status
    else
      if s[4] ~= '' and source ~= s[4] and source ~= operator then
        return {'forbidden', i - 1, s[4]}
      end
      if s[2] ~= 'live' then
        return {'rejected', i - 1, 'self', s[2], s[3]}
      end
      if op == 'merge' then
        local into = e[6]
        if into == entity then
          return {'rejected', i - 1, 'into', 'self', ''}
        end
        local t = states[into]
        if foreign[i] ~= nil then
          t = parsed(foreign[i])
        end
        if t[2] ~= 'live' then
          return {'rejected', i - 1, 'into', t[2], t[3]}
        end
        s[2] = 'merged'
        s[3] = e[7]
      elseif op == 'retract' then
        s[2] = 'retracted'
      end
    end
    if change then
      s[1] = s[1] + 1
      if not dirty[entity] then
        dirty[entity] = true
        dirty_order[#dirty_order + 1] = entity
      end
    end
  end
end

if ARGV[3] == '1' then
  return {'ok', ''}
end

-- second pass: write
local result = {'ok', ''}
local flags = {}
local positions = {}
local new_ids, new_buckets = {}, {}
local touched = {}
local order = {}
local function remember(entity, pos)
  local list = touched[entity]
  if list == nil then
    list = {}
    touched[entity] = list
    order[#order + 1] = entity
  end
  list[#list + 1] = pos
end
for i = 1, n do
  local e = batch[i]
  local d = dup[i]
  local pos
  if d == nil then
    local fields = e[1]
    if e[8] ~= '' then
      fields[#fields + 1] = 'sealed'
      fields[#fields + 1] = e[8]
    end
    pos = redis.call('XADD', log, '*', unpack(fields))
    local held = new_ids[e[13]]
    if held == nil then
      held = {}
      new_ids[e[13]] = held
      new_buckets[#new_buckets + 1] = e[13]
    end
    held[#held + 1] = e[2]
    held[#held + 1] = pos .. ' ' .. e[10]
    if e[5] == 'create' then
      states[e[3]][5] = pos  -- kept in the entity's state: no history entry for it
    else
      remember(e[3], pos)
    end
    if e[5] == 'merge' then
      remember(e[6], pos)
    end
    flags[i] = 'a'
  else
    if type(d) == 'number' then
      pos = positions[d]
    else
      pos = d
    end
    flags[i] = 'd'
  end
  positions[i] = pos
  result[i + 2] = pos
end
result[2] = table.concat(flags)
for _, bucket in ipairs(new_buckets) do
  local held = new_ids[bucket]
  if #held == 2 then
    redis.call('HSET', ids .. ':' .. bucket, held[1], held[2])
  else
    hset(ids .. ':' .. bucket, held)
  end
end
local changed = {}
for _, entity in ipairs(dirty_order) do
  local s = states[entity]
  local value = s[1] .. '|' .. s[2]
  if s[5] ~= '' then
    value = value .. '|' .. s[3] .. '|' .. s[4] .. '|' .. s[5]
  elseif s[4] ~= '' then
    value = value .. '|' .. s[3] .. '|' .. s[4]
  elseif s[3] ~= '' then
    value = value .. '|' .. s[3]
  end
  redis.call('HSET', entities .. ':' .. bucket_of[entity], entity, value)
  changed[#changed + 1] = entity
end
if unbucketed and #changed > 0 then
  for first = 1, #changed, CHUNK do
    redis.call('HDEL', entities, unpack(changed, first, math.min(first + CHUNK - 1, #changed)))
  end
end
if #order > 0 then
  local old = hmget(history, order)
  local lists = {}
  for j, entity in ipairs(order) do
    local joined = table.concat(touched[entity], ' ')
    if old[j] then
      joined = old[j] .. ' ' .. joined
    end
    lists[#lists + 1] = entity
    lists[#lists + 1] = joined
  end
  hset(history, lists)
end
return result
