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
//     confirms. Gate is the pipeline's hook: it sees track IDs, boxes and
//     the tracker's continuity counts only, never pixels, and ends a
//     consent when its track is gone, its time is up or it is withdrawn.
//     Signed receipts.
//   - follow.go: the opt-in follows the person, not the track number. A
//     tracker can swap two people's tracks when they cross, so the gate
//     suspends the exemption while another face is near the bound one,
//     and unbinds the consent (ledger: unbind with the reason; the shopper
//     may confirm again on the spot, a relayed grant ends) when, by
//     position and time, which face is which can no longer be told: the
//     tracker reports the bound track contested by a tracked face, or a
//     face was not detected while close. Once apart with continuity
//     intact, the exemption resumes. The file has the rules and why a
//     swap cannot exempt the bystander.
//   - web.go: the sign's page and the phone pages (no login, CSRF double
//     submit, per-client rate limit). The phone pages run over a Backend:
//     the box's Service, or head office's consent relay (hq/relay), which
//     serves the same pages with PhoneHandler.
//   - downlink.go, receiver.go: head office's consent relay. Shoppers on
//     mobile data cannot reach the box, so the sign's QR code may point at
//     head office (consent.public_url), which checks the box-signed token
//     with the box's registered public key and sends the grant or the
//     withdrawal down to the box over MQTT as a Downlink signed with head
//     office's key (<prefix>/<store>/<device>/consent). The box only
//     subscribes: it publishes no acknowledgement or consent state. Its
//     Receiver accepts a message only with head office's signature
//     (consent.relay_key), its own box name, an issued time within
//     DownlinkMaxAge (2 min) back and DownlinkMaxAhead (30 s) ahead of its
//     clock, and an id it never accepted (ids kept on disk until they
//     would be stale, so a replay after a restart is refused too); a
//     grant's token must pass the box's usual checks (its own signature,
//     expiry, notice version, single use, signage camera). Every refusal
//     is logged with its reason and counted.
//     A relayed grant is recorded under head office's consent id (ledger
//     grant entry marked relayed). With no phone to tap Confirm on the box,
//     the box binds it on the first pipeline update (Gate.Exempt) of the
//     signage camera that has exactly one face track on the opt-in zone,
//     within RelayBindWindow (30 s); otherwise the grant ends with the
//     ledger reason "not bound: ...". A relayed withdrawal ends the consent
//     at once: its face is redacted from the next frame.
//   - ledger.go: the append-only, hash-chained ledger of grant, bind, unbind,
//     withdraw and expire, with retention purges; no IP address, user agent,
//     phone identifier or image is ever recorded. Head office keeps its own
//     copy of the records it relays in the same format (Entry.Box names
//     the box).
//
// Nothing biometric is computed for opt-in: a consent binds to a track (a
// box over time), not to a face.
package consent
