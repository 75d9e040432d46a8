// Package natsobj implements an objstore.Store on NATS JetStream, for fleets
// that already run NATS and need no S3: payloads are objects of a JetStream
// object store bucket, and pointers are keys of a KV bucket whose revision is
// the compare-and-swap token.
//
// # Buckets
//
// A store named by the object bucket B uses two buckets, both created on
// first use if missing (an existing bucket is used as it is):
//
//	B            object store: objects written with Put (payloads)
//	B-pointers   KV, history 1: objects written with Create and Replace (pointers)
//
// [PointerBucket] derives the second name. The URL nats-object://B/PREFIX
// names both.
//
// # Semantics
//
// Create is the KV's create (it fails if the key holds a value) after a
// check that no object of that name exists; Replace is the KV's update at the
// revision given as the ETag (the decimal revision Get returned). Get, List
// and Delete see both buckets, the KV first. A name is meant to be written
// either with Put or with Create/Replace, never both: a Put over a pointer's
// name is not atomic with respect to the pointer.
//
// Pointer names must be valid KV keys: [-/_=.A-Za-z0-9], not starting or
// ending with '.', no empty '.'-separated token. The transport's names are,
// for prefixes and keys in [A-Za-z0-9._/-] without "..". A pointer is at
// most the server's max_payload (1 MiB by default, the transport's own
// pointer limit).
package natsobj
