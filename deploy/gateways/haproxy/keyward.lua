-- keyward in front of a service, for HAProxy 2.6 and later: an `http-request` action that
-- asks keyward whether the request's X-API-Key may pass, with HAProxy's own HTTP client.
--
--   http-request lua.keyward http://127.0.0.1:8080/auth/acme?permission=orders:read
--
-- Valid key: the request goes on with keyward's X-Keyward-* headers and without the key.
-- Refused key: keyward's 401, 403 or 429 (a key over its rate limit) answer is the
-- client's. keyward unreachable, or any other answer: 503. The request never reaches the service unless keyward said 2xx.

local IDENTITY = { "x-keyward-tenant", "x-keyward-key", "x-keyward-permissions" }
-- What a refusal tells the client beside its body: how to authenticate, and for a key over
-- its rate limit, when to retry and the limit's state.
local REFUSAL_HEADERS = { "www-authenticate", "retry-after", "ratelimit", "ratelimit-policy" }
-- Milliseconds for the whole check: a slow keyward is a down keyward.
local TIMEOUT_MS = 2000

-- The first value of a header in a table HAProxy built (its lists start at index 0).
local function first(headers, name)
  local values = headers and headers[name]
  return values and values[0]
end

-- Only the key goes to keyward, never the client's other headers or body.
local function ask_keyward(url, key)
  local request = { url = url, timeout = TIMEOUT_MS, headers = {} }
  if key then
    request.headers["x-api-key"] = { key }
  end
  local ok, answer = pcall(function() return core.httpclient():get(request) end)
  if ok then
    return answer
  end
end

-- keyward's refusal as it wrote it: a problem+json body that never echoes the key.
local function refuse(txn, answer)
  local headers = { ["content-type"] = { first(answer.headers, "content-type") } }
  for _, name in ipairs(REFUSAL_HEADERS) do
    local value = first(answer.headers, name)
    if value then
      headers[name] = { value }
    end
  end
  txn:done(txn:reply({ status = answer.status, headers = headers, body = answer.body }))
end

-- keyward unreachable, slow, or answering anything unexpected: the request stops here.
local function unavailable(txn)
  local headers = { ["content-type"] = { "text/plain" } }
  local body = "the API key could not be checked\n"
  txn:done(txn:reply({ status = 503, headers = headers, body = body }))
end

local function check(txn, url)
  local http = txn.http
  -- Cleared first, so a client can never claim an identity, whatever keyward answers.
  for _, name in ipairs(IDENTITY) do
    http:req_del_header(name)
  end
  local answer = ask_keyward(url, first(http:req_get_headers(), "x-api-key"))
  local status = answer and answer.status or 0
  if status >= 200 and status < 300 then
    for _, name in ipairs(IDENTITY) do
      local value = first(answer.headers, name)
      if value then
        http:req_set_header(name, value)
      end
    end
    -- The plaintext key stops here.
    http:req_del_header("x-api-key")
  elseif status == 401 or status == 403 or status == 429 then
    refuse(txn, answer)
  else
    unavailable(txn)
  end
end

core.register_action("keyward", { "http-req" }, check, 1)
