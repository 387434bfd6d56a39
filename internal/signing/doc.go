// Package signing lets an API key demand that every request made with it is
// signed with an Ed25519 key its owner holds, so a leaked API key secret alone
// is not enough to call Tollgate, and a captured request cannot be replayed.
//
// # Headers
//
// A request made with an API key that has a signing key registered carries,
// besides the API key itself:
//
//	X-Timestamp:          unix seconds, in decimal: 1700000000
//	X-Nonce:              a UUID, new for every request: 3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11
//	X-Request-Signature:  base64 of the 64-byte Ed25519 signature of the canonical string
//
// # Canonical string
//
// The signed message is five lines joined by "\n", with no trailing newline:
//
//	METHOD             the HTTP method as sent: POST
//	PATH               the URL path as the server decodes it, plus "?" and the raw
//	                   (still-encoded) query when there is one: /graphql?query=%7Bme%7D
//	TIMESTAMP          the X-Timestamp value: 1700000000
//	NONCE              the X-Nonce value exactly as sent
//	BODY_SHA256        lowercase hex of the SHA-256 of the body; an empty body gives
//	                   e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
//
// For example, POST /graphql with body {} at 1700000000 with nonce
// 3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11 signs
//
//	POST\n/graphql\n1700000000\n3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
//
// The host is not signed: the signing key belongs to one Tollgate API key, so
// a signature is only ever accepted by the Tollgate that holds that key. A
// proxy that rewrites the path breaks signatures by design.
//
// # What the server refuses
//
// A timestamp more than 30 s from the server's clock (either direction); a
// nonce already used with the same API key while its timestamp is still
// acceptable; a signature that does not verify, which covers any change to
// the method, path, query, timestamp, nonce or body; a body over 1 MiB. Each
// refusal is an auth.Failure whose Reason is one of the Reason constants.
//
// Nonces are recorded only after the signature verifies, with
// SET nonce:<api key id>:<uuid> 1 NX EX <ttl> in the Redis all replicas share,
// so a replay to any replica is refused. The ttl lasts until the timestamp
// leaves the window (31 s for a client on time, at most 61 s for one 30 s
// ahead), not a flat 30 s, which would reopen a replay window for clients
// whose clocks run ahead. Replicas' clocks should agree (NTP); a replica
// running d behind widens that window by d. When Redis cannot record the
// nonce, signed requests are refused with NONCE_UNAVAILABLE.
//
// Sign adds the three headers to a Go client's request.
package signing
