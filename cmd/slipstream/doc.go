// Command slipstream mirrors a NATS JetStream KV bucket into a local,
// durable fold, keeps it in sync, serves it over HTTP and queries it.
//
// Usage:
//
//	slipstream <command> [flags] [arguments]
//
// Every command takes -h, -log-level (debug, info, warn, error) and
// -log-format (text, json); logs go to stderr, results to stdout. Flags may
// come before or after the arguments. Exit status: 0 on success (and -h), 2
// for a usage error, 1 for any other failure, each with one line on stderr.
//
// # mirror
//
//	slipstream mirror --bucket NAME --fold DIR [connection flags]
//	    [--prefix P]... [--backend applog|pebble]
//	    [--http ADDR [--http-tls-cert FILE --http-tls-key FILE] [--http-token-file FILE]]
//	    [--batch-max N] [--batch-window DUR] [--listen ADDR] [--nats-store DIR]
//	    [--history N] [--max-bytes N] [--max-age DUR] [--replicas N]
//	    [--audit-every DUR] [-json]
//	    [--export-to URL --export-every DUR [--export-key KEY] [--node-id ID]]
//	    [--bootstrap-from URL [--bootstrap-key KEY]]
//
// Mirrors the bucket (or the keys under the -prefix flags, all on one
// consumer) into the fold at DIR and keeps it in sync until SIGINT or
// SIGTERM; then it flushes, prints the final cursor on stdout (a revision, or
// a JSON object with -json) and exits 0.
//
// The fold's own cursor is the resume point: a restart reads only the delta.
// When the history after the cursor is gone (max age, purges, a recreated
// bucket), the follower resyncs: fold keys the bucket no longer holds are
// deleted, then the bucket is re-listed. If the watch fails (a server
// restart, a lost subscription, a floor-guard trip), the mirror restarts the
// follower from the fold's cursor with a backoff of 200 ms doubling to 10 s;
// only a misconfiguration or an unusable fold stops it (exit 1).
//
// The fold is audited against the bucket (see audit below) in the
// background after every start or restart of the follower has caught up, and
// every -audit-every (default 1h; 0 keeps only the post-resume audits).
// Divergent keys are re-read and repaired through the running follower, so a
// live update wins; a backwards finding is logged at Error level. A running
// watch also checks its stream every 5 s: a bucket deleted, recreated or
// restored from an older copy under it makes the follower restart and
// resync, without the process restarting.
//
// The fold's backend is applog (default: an append-only log folded in
// memory) or pebble (an LSM tree on disk); an existing fold keeps its own.
// A fold records the bucket and scope it mirrors (slipstream-binding.json in
// its directory): a mirror with another -bucket or -prefix refuses it and
// leaves it untouched. The record also names the bucket's stream the fold's
// cursor belongs to, so a restart on a bucket recreated since resyncs
// instead of resuming. A fold without that record (imported, bootstrapped,
// or made by an older version) is compared with the bucket at a few points
// and refused if it holds another bucket's keys; otherwise it is resumed,
// and reported ready only once an audit has verified it
// (docs/OPERATIONS.md).
//
// Without -nats or -context (nor NATS_URL or NATS_CONTEXT), mirror starts an
// embedded nats-server with JetStream,
// storing its data in <fold>.nats next to the fold (-nats-store overrides)
// and listening on 127.0.0.1:4222 (-listen overrides; port 0 picks one), so
// that 'slipstream kv' and any NATS client on the host can write to it. The
// bucket is created if missing, with -history (1), -max-bytes (1 GiB; -1 is
// unlimited), -max-age (none) and -replicas (1); an existing bucket is used
// as it is. On a server given by -nats or -context the bucket must exist
// unless -create-bucket is given (a missing bucket is an error naming bucket
// and server); the bucket flags need -create-bucket there.
//
// With -export-to, the mirror takes part in the fleet's export rounds: every
// -export-every (jittered ±25%), the node that wins the export lease (a key
// of the KV bucket slipstream-leases on the mirrored server) exports its
// fold between two flushes and publishes it under -export-key (default: the
// bucket name) at the store URL (s3://BUCKET/PREFIX, nats-object://BUCKET/PREFIX,
// file:///DIR). With -bootstrap-from, a fold that is missing, empty or whose
// cursor expired starts from the latest artifact there and replays only the
// updates after its cursor; without a usable artifact (none, another
// backend, older than the bucket's retained history) it syncs or resyncs as
// usual and logs why. Both store URLs are probed at startup: a missing
// bucket or refused credentials end the mirror (exit 1); publish, fetch and
// prune probe their store the same way before any work. docs/FLEET.md has
// the details.
//
// While catching up, progress is shown as a bar when stderr is a terminal,
// else as a log line every 5 s (keys done, pending, rate, ETA; from the watch
// consumer's pending count).
//
// With -http ADDR it serves, read-only (any other method is 405):
//
//	GET /v1/kv/{key}      the value's bytes; 404 when absent; revision in the
//	                      Slipstream-Revision header. The key is the rest of
//	                      the path, taken as sent (a//b, x/../y are keys:
//	                      nothing is cleaned or redirected); %2F escapes work
//	GET /v1/kv?prefix=P   JSON lines {"key","value" (base64),"revision"}, in
//	                      key order, streamed
//	GET /v1/status        JSON: bucket, fold, backend, scope, state, ready,
//	                      cursor, keys, server_head, caught_up_to, lag
//	                      (server_head minus caught_up_to: docs/OPERATIONS.md,
//	                      "Lag"), pending, resyncs, restarts, nats_connected,
//	                      nats_disconnected_since (during an outage),
//	                      nats_disconnects, last_error, verifying,
//	                      verified (an
//	                      audit since the last resume found the fold equal or
//	                      repaired it), audits, last_audit (the summary
//	                      object of 'slipstream audit', with error when it
//	                      failed), and with the fleet flags a fleet object
//	                      (last export round, last bootstrap, the newest
//	                      artifact's age and revisions behind the head)
//	GET /healthz          200 while the process serves
//	GET /readyz           200 once the first sync or resume has caught up
//	                      (latched) on a fold bound to the bucket, 503
//	                      before (and while verifying a fold without a
//	                      binding), and 503 while NATS has been
//	                      disconnected for -disconnect-grace (5 s) or longer
//	GET /metrics          Prometheus metrics (slipstream_applied_cursor,
//	                      slipstream_server_head, slipstream_lag_revisions,
//	                      slipstream_flush_batch_updates,
//	                      slipstream_flush_duration_seconds,
//	                      slipstream_store_failures_total,
//	                      slipstream_resyncs_total, slipstream_audits_total,
//	                      slipstream_audit_divergences_total{class},
//	                      slipstream_audit_repaired_keys_total,
//	                      slipstream_verified, slipstream_ready,
//	                      slipstream_nats_connected,
//	                      slipstream_nats_disconnects_total, …)
//	GET /v1/artifact      a fresh artifact of the fold as a tar, taken
//	                      through the follower between two flushes
//	                      (Content-Length exact, cursor in the
//	                      Slipstream-Cursor header); 503 while the follower
//	                      restarts. The temporary copy beside the fold is
//	                      removed on every path.
//
// The API has no authentication of its own: bind it to loopback
// (127.0.0.1:8080), or protect it. -http-tls-cert and -http-tls-key serve
// HTTPS (TLS 1.2 or later); -http-token-file requires "Authorization: Bearer
// TOKEN" (the file's content, trimmed) on every route except /healthz and
// /readyz, which probes reach without credentials (401 otherwise).
//
// The states of /v1/status are starting, bootstrapping (replacing the fold
// with the fleet's artifact), syncing (first copy into an empty
// fold), resuming (catching up on the delta after the fold's cursor),
// resyncing (the cursor expired), synced, verifying (caught up on a fold
// without a binding — imported, bootstrapped or made by an older version —
// that an audit has yet to verify; not ready; "verifying" says why),
// retrying (the watch failed; a restart is pending) and stopped. Lag is the
// stream's last sequence minus caught_up_to (the fold's cursor, or the head
// the current watch proved caught up to: docs/OPERATIONS.md, "Lag"); with
// -prefix it counts messages outside the scope too.
//
// # get, range, stat
//
//	slipstream get   --fold DIR [-json] KEY
//	slipstream range --fold DIR [PREFIX]
//	slipstream stat  --fold DIR [-json]
//
// Offline queries of a fold; the backend is detected from the directory.
// get prints the value's bytes (a missing key exits 1); range prints JSON
// lines as GET /v1/kv does; stat prints the cursor, key count, backend,
// size on disk and the bucket and scope the fold is bound to. On a fold a running mirror holds, an applog fold is read
// through a read-only view (said on stderr) and a pebble fold is refused:
// query the mirror's -http instead.
//
// # export, import, verify
//
//	slipstream export --fold DIR --out ARTIFACT [-json]
//	slipstream export --from http://HOST:PORT --out ARTIFACT [-json]
//	slipstream import --artifact ARTIFACT --fold DIR [-json]
//	slipstream verify [-json] ARTIFACT
//
// An artifact is a directory: MANIFEST.json (backend, cursor, size and
// BLAKE3 of every file) and the fold's payload under data/
// (docs/ARTIFACTS.md). export writes one from a fold no mirror runs on
// (-fold; a held fold is refused: use -from), or downloads a fresh one from a
// running mirror's GET /v1/artifact (-from), unpacking the tar safely and
// verifying it before it moves into place, with a progress bar on a
// terminal. import verifies an artifact while copying it into a new fold
// (the backend reopens the copy at the manifest's cursor); a mirror on that
// fold then resumes from the artifact's cursor. verify checks an artifact in
// place and prints its backend, cursor, files and bytes; an invalid one
// exits 1 with the reason. -out and -fold must not exist or be empty; on
// failure they are left as they were.
//
// # audit
//
//	slipstream audit --fold DIR --bucket NAME [connection flags]
//	    [--prefix P]... [--repair] [--nats-store DIR]
//
// Compares a fold that no mirror holds with its bucket, key by key, from
// headers only (each key's latest revision and operation), and prints one
// JSON line per divergence, then a summary line:
//
//	{"class":"stale","key":"k.1","fold_revision":2,"server_revision":9,"server_op":"delete"}
//	{"class":"missed","key":"k.7","server_revision":6,"server_op":"put"}
//	{"class":"backwards","key":"a","fold_revision":9,"server_revision":1,"server_op":"put"}
//	{"class":"backwards","fold_cursor":12,"server_last":5}
//	{"summary":{"time":…,"duration_ms":…,"equal":false,"cursor":12,"server_last":5,
//	    "fold_keys":…,"checked":…,"in_flight":…,"stale":1,"missed":1,"backwards":2,"repaired":0}}
//
// stale: the fold holds a key the bucket deleted (server_op delete or purge)
// or no longer holds (no server_revision). missed: the bucket holds a value,
// at a revision the fold's cursor covers, that the fold lacks or holds older.
// backwards: the bucket's revision of a key is below the fold's (the server
// lost a write), or (the line with fold_cursor) the fold's cursor is past the
// server's last sequence. Records above the fold's cursor are in flight and
// ignored. Zero fields are omitted. -prefix must repeat the mirror's.
//
// Exit status 0 when the fold equals the bucket, 1 when it diverges (also
// after -repair) or on error. -repair re-reads each divergent key and folds
// it in place without moving the cursor; when the cursor is past the server's
// last sequence it is reset instead, so the next mirror re-lists. The bucket
// is never created. The connection flags are mirror's; without -nats or
// -context, the embedded server of <fold>.nats (or -nats-store) is started
// on a free port.
//
// # kv
//
//	slipstream kv put   --bucket NAME [connection flags] KEY [VALUE]
//	slipstream kv get   --bucket NAME KEY
//	slipstream kv del   --bucket NAME KEY
//	slipstream kv purge --bucket NAME KEY
//	slipstream kv ls    --bucket NAME [PREFIX]
//
// A small NATS KV client. put reads the value from stdin when VALUE is
// omitted and prints the new revision. The default -nats is
// nats://127.0.0.1:4222, the embedded server of a local mirror. The bucket is
// created if missing (1 GiB limit).
//
// # Connecting to NATS
//
// mirror, kv (and publish, fetch and prune for nats-object:// stores) take
// natscli's connection flags; a flag not given falls back to the environment
// variable in brackets, then to the -context:
//
//	--nats URL          server URLs, comma-separated; tls:// requires TLS;
//	                    nats://user:pass@host and nats://TOKEN@host work [NATS_URL]
//	--context NAME      a saved natscli context ('nats context save'), read
//	                    with natscontext from ~/.config/nats/context [NATS_CONTEXT]
//	--creds FILE        user JWT and seed (.creds) [NATS_CREDS]
//	--nkey FILE         NKey user seed [NATS_NKEY]
//	--user, --password  user and password [NATS_USER, NATS_PASSWORD]
//	--token TOKEN       authentication token [NATS_TOKEN]
//	--tlsca FILE        CAs that verify the server [NATS_CA]
//	--tlscert, --tlskey client certificate and key (mutual TLS) [NATS_CERT, NATS_KEY]
//	--tlsfirst          TLS handshake before the server's INFO
//
// One authentication method is used, the first set of: creds, nkey,
// user/password, token, the URL's userinfo, the context's. The selected
// natscli context is not used implicitly; contexts with a JetStream domain
// or API prefix are refused.
//
// # bench
//
//	slipstream bench [-keys 200000] [-value-size 256] [-backend applog,pebble]
//
// Starts an embedded server, fills a bucket with async publishes, then in one
// run measures hydration by raw nats.go WatchAll to the initial-values marker
// and by the mirror's own path (natskv watch → Follower → fold) into each
// backend: keys/s, peak RSS per phase and the ratio against raw.
//
// # version
//
//	slipstream version [-json]
//
// Prints the module version, Go version and VCS revision of the build.
package main
