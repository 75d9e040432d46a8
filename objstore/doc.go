// Package objstore publishes fold artifacts to object storage and fetches
// them back: the [Store] seam that object stores implement, and the
// [Transport] that builds the monotone publish protocol on it
// (docs/TRANSPORT.md).
//
// # Layout
//
// Under a prefix, a logical key (which may contain '/') owns two names:
//
//	<prefix>/<key>.manifest.json                        the pointer: the published artifact's MANIFEST.json bytes
//	<prefix>/<key>.payloads/<rank>-<hash>.tar           one payload per uploaded artifact
//
// rank is the manifest cursor's rank as 16 lowercase hex digits; hash is the
// first 8 bytes of BLAKE3 of the pointer bytes, as 16 lowercase hex digits.
// A pointer therefore names exactly one payload.
//
// # Guarantees
//
// The pointer's cursor never goes backwards: Upload writes it only with a
// conditional write, after protocol.PointerPublishAllowed. A pointer always
// names a fetchable payload: the payload is uploaded before the pointer, and
// Prune deletes only payloads strictly below the pointer's rank
// (protocol.PayloadPrunable). Neither depends on a lease or on clocks.
//
// # Stores
//
// Subpackages implement Store: mem (in memory, for tests), file (a local
// directory; no conditional replace), s3 (Amazon S3 and compatible servers)
// and natsobj (a NATS JetStream object store plus a KV bucket for pointers).
// storeurl opens one of them from a URL. objstoretest is the conformance
// suite every store passes.
package objstore
