--- truto.defaults: every default of the module, in one table.
--
-- The client (truto.client), both transports (the libcurl one gets its
-- numbers from here when the client makes it; the nginx one through
-- truto.ngx.settings), the retry policy (truto.attempt), the rate store
-- (truto.rate), sync (truto.sync) and the CLI's help read these values;
-- none keeps a number of its own. docs_spec checks the docs against it.
--
-- @module truto.defaults

return {
  base_url = "https://api.truto.one",

  -- each request
  timeout = 30, -- seconds for a whole exchange
  connect_timeout = 10, -- seconds to connect (TCP and TLS)
  max_body = 64 * 1024 * 1024, -- bytes of answer body accepted
  -- max_body bounds bytes, but a 60 MB body of 20 million `{}` would take
  -- about 2 GB once decoded
  max_values = 10000000,

  -- retries (docs/errors.md "Retries")
  max_retries = 3,
  max_retry_wait = 60, -- seconds: a longer Retry-After fails at once
  -- 503 never: Truto answers it for a blocked account, which no retry mends
  retry_statuses = { 429, 500, 502, 504 },
  backoff_base = 0.5, -- seconds before the first retry of a 5xx or a network failure
  backoff_cap = 10, -- seconds: no backoff is longer
  wait_429 = 10, -- seconds after a 429 that names no wait

  -- listings
  concurrency = 8, -- requests in flight at once in a many-accounts listing

  -- rate budgets: `per` when a budget names only `requests`; the nginx
  -- shared dict budgets live in unless `rate_limit.shared_dict` names one
  rate_per = 10,
  rate_shared_dict = "truto_rate",

  -- the nginx transport's connection pool
  pool_size = 32,
  keepalive_timeout = 60,

  -- a Redis store's connection (truto.rate.redis, truto.sync.redis)
  redis = { host = "127.0.0.1", port = 6379, timeout = 1, keepalive = 60, pool_size = 16 },

  -- sync (truto.sync)
  sync_overlap = 120, -- seconds each incremental run reaches back
  sync_full_every = 24 * 3600, -- seconds between full listings (deletions)
}
