// Package consent is the shoppers' opt-in: a shopper may choose, on their own
// phone, to appear unredacted on the live view of the camera at a consent
// sign, for as long as their consent lasts. Everyone else, and everyone by
// default, is redacted.
//
//   - token.go: the signage QR token, signed by the box (Ed25519), short-lived,
//     single-use, bound to the box, the camera, its opt-in zone and the notice
//     version; its strict parser is fuzzed.
//   - notice.go, notice.json: the versioned notice in en and zh-CN; its hash
//     goes into the ledger with every grant.
//   - service.go: tokens issued and used, grants, and binding a grant to the
//     one face track inside the opt-in zone at the moment the shopper
//     confirms. Gate is the pipeline's hook: it sees track IDs and boxes only,
//     never pixels, and ends a consent when its track is gone, its time is
//     up or it is withdrawn. Signed receipts.
//   - web.go: the sign's page and the phone pages (no login, CSRF double
//     submit, per-client rate limit).
//   - ledger.go: the append-only, hash-chained ledger of grant, bind, unbind,
//     withdraw and expire, with retention purges; no IP address, user agent,
//     phone identifier or image is ever recorded.
//
// Nothing biometric is computed for opt-in: a consent binds to a track (a
// box over time), not to a face.
package consent
